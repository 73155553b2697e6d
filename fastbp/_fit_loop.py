"""Trainer.fit's loop over epochs: many epochs per compiled call where nothing is needed
from Python between them, else one at a time (progress bar, validation loss, callback,
early stopping); the lr_schedule's rates, checked; after divergence, the rollback to the
newest epoch start whose network has a finite loss; after the fit, the saturation
warning. ``Trainer`` (trainer.py) checks a fit's arguments and calls ``run``; ``Session``
(_session.py) runs the compiled calls."""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from fastbp._session import Session
from fastbp.history import EpochLog, History
from fastbp.kernels import codes

if TYPE_CHECKING:
    from fastbp.network import Network
    from fastbp.trainer import Trainer

# Fits of at least this many epochs are checked for saturation (warn_if_saturated).
SATURATION_EPOCHS = 5
# What a schedule's rate may be for the rates of many epochs to be checked in one pass.
PLAIN_NUMBERS = {float, int, np.float64, np.float32, np.float16, np.int64, np.int32}

# What snapshot keeps of an epoch start: params, optimizer state, update count, epoch number.
Snapshot = tuple[NDArray[Any], NDArray[Any], NDArray[Any], int]


def run(trainer: Trainer, history: History, X: NDArray[Any], Y: NDArray[Any],
        sw: NDArray[Any], epochs: int, validation: tuple[Any, Any] | None, bar: Any,
        patience: int | None, restore_best: bool,
        callback: Callable[[int, History], Any] | None, check: Callable[[], None],
        raw: Any, samples_per_call: int) -> None:
    """Train ``trainer`` for ``epochs`` epochs on (X, Y) -- inputs already through the
    network's scaling; ``raw`` as the caller gave them, for Network.loss -- recording each
    into ``history``. Whole epochs run ``samples_per_call // n`` (at least one) per
    compiled call when the fit needs nothing from Python between epochs."""
    net, n = trainer.net, X.shape[0]
    session = Session(trainer, X, Y, sw, trainer.batch_rows(n))
    session.check_interrupt = check
    fast = (session.runs_epochs and validation is None and bar is None and patience is None
            and callback is None and not getattr(trainer.lr_schedule, "needs_losses", True))
    per_call = max(1, samples_per_call // n)
    log = EpochLog(trainer, history, patience, restore_best)
    starts = [snapshot(trainer)]  # fit start, then the last two epoch starts
    replay = 0  # epochs to run one by one after a many-epoch call diverged
    done = 0
    while done < epochs:
        if fast and not replay:
            rates = rates_ahead(trainer, min(per_call, epochs - done))
            if len(rates):
                results = session.run_epochs(rates)
                if results is None:  # diverged: replay those epochs for the exact error
                    replay = len(rates)
                else:
                    totals, weights, seconds = results
                    with np.errstate(divide="ignore", invalid="ignore"):
                        log.record_many(rates, totals / weights, seconds)
                    done += len(totals)
                    starts = [starts[0]]
                    check()
                    continue
        lr = trainer.next_rate()
        order = (trainer.rng.permutation(n) if trainer.shuffle
                 else np.arange(n)).astype(np.int64)
        session.hyper[codes.H_LR] = lr
        start = snapshot(trainer)
        starts = [starts[0], *starts[1:][-1:], start]
        session.compile()  # not timed: History.seconds is training alone
        started = time.perf_counter()
        on_chunk = None if bar is None else (
            lambda k, running: (bar.update(k), bar.set_postfix(loss=f"{running:.4g}")))
        try:
            total, weight = session.run(order, on_chunk, snapshot=start)
        except FloatingPointError as exc:
            back = restore_sound(trainer, starts, raw, Y, sw)
            raise FloatingPointError(
                f"epoch {trainer.epoch + 1}: {exc} (learning rate {lr:g}). The network and "
                f"the optimizer state are back where epoch {back} began.") from None
        replay = max(0, replay - 1)
        seconds = time.perf_counter() - started
        val_loss = (None if validation is None
                    else net.loss(*validation, backend=trainer.backend_used))
        stop = log.record(lr, total / weight, seconds, val_loss, net.params)
        done += 1
        if bar is not None:
            bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in
                             (("loss", history.loss), ("val_loss", history.val_loss)) if v})
        if callback is not None and callback(history.epochs - 1, history):
            history.stopped_early = True
            break
        if stop:
            log.stop_early(net.params)
            break
        check()


def rate(trainer: Trainer, epoch: int) -> float:
    """The trainer's lr_schedule's rate for the epoch after ``epoch`` trained ones, checked:
    a finite number >= 0, else ValueError naming the schedule."""
    lr = trainer.lr_schedule.rate(epoch, trainer.learning_rate, trainer.monitored)
    ok = isinstance(lr, (float, int, np.floating, np.integer)) and not isinstance(lr, bool)
    if not ok or not (math.isfinite(lr) and lr >= 0):
        raise ValueError(f"lr_schedule {trainer.lr_schedule!r} gave the learning rate {lr!r} "
                         f"for epoch {epoch + 1}; a rate must be a finite number >= 0")
    return float(lr)


def rates_ahead(trainer: Trainer, count: int) -> NDArray[np.float64]:
    """The rates of the trainer's next ``count`` epochs (a schedule that does not read
    losses), float64, up to the first one that is not sound (its epoch then runs alone,
    and raises): what ``rate`` gives epoch by epoch, checked in one pass."""
    schedule, lr0 = trainer.lr_schedule, trainer.learning_rate
    ahead = getattr(schedule, "rates", None)
    raw = None if ahead is None else ahead(trainer.epoch, count, lr0)
    if not (isinstance(raw, np.ndarray) and raw.shape == (count,) and raw.dtype.kind in "fiu"):
        raw = [schedule.rate(trainer.epoch + i, lr0, trainer.monitored) for i in range(count)]
    if isinstance(raw, np.ndarray) or set(map(type, raw)) <= PLAIN_NUMBERS:
        rates = np.asarray(raw, np.float64)
        sound = np.isfinite(rates) & (rates >= 0)
        return rates if sound.all() else rates[:int(np.argmin(sound))]
    checked = []
    for i in range(count):
        try:
            checked.append(rate(trainer, trainer.epoch + i))
        except ValueError:
            break
    return np.asarray(checked, np.float64)


def snapshot(trainer: Trainer) -> Snapshot:
    """Copies of the parameters, optimizer state and update count, and the number (from 1)
    of the epoch about to run: what ``restore_sound`` puts back."""
    return (trainer.net.params.copy(), trainer.state.copy(), trainer.steps.copy(),
            trainer.epoch + 1)


def restore_sound(trainer: Trainer, starts: list[Snapshot], X: Any, Y: NDArray[Any],
                  sw: NDArray[Any]) -> int:
    """After divergence: params and optimizer state of the newest snapshot (epoch start)
    whose network has a finite loss on X; returns that epoch's number (from 1)."""
    net = trainer.net
    for params, state, steps, epoch in reversed(starts):
        net.params[...], trainer.state[...], trainer.steps[...] = params, state, steps
        with np.errstate(all="ignore"):
            loss = net.loss(X, Y, backend=trainer.backend_used,
                            sample_weight=sw if len(sw) else None)
        if math.isfinite(loss):
            return epoch
    return epoch


def warn_if_saturated(trainer: Trainer, history: History, Y: NDArray[Any], sw: NDArray[Any],
                      start_loss: float) -> None:
    """RuntimeWarning when the loss of each of the last 3 epochs is over 1.5 times both
    the network's loss before the fit and a constant predictor's: divergence that
    saturates (units stuck at their limits) instead of overflowing."""
    losses = history.loss
    if len(losses) < SATURATION_EPOCHS or not math.isfinite(start_loss):
        return
    last = min(losses[-3:])
    base = constant_loss(trainer.net, Y, sw)
    if last > 1.5 * max(start_loss, base, 1e-12):
        warnings.warn(
            f"the training loss stayed at {last:.4g} or above for the last 3 epochs, over "
            f"1.5 times both its {start_loss:.4g} before this fit and the {base:.4g} of a "
            f"constant predictor: the network has likely saturated; try a smaller "
            f"learning_rate (now {trainer.learning_rate:g})", RuntimeWarning, stacklevel=3)


def constant_loss(net: Network, Y: NDArray[Any], sw: NDArray[Any]) -> float:
    """Mean per-sample cost of the best constant output (the weighted mean of Y)."""
    w = sw.astype(np.float64) if len(sw) else None
    Y = Y.astype(np.float64)
    p = np.average(Y, axis=0, weights=w)
    with np.errstate(divide="ignore", invalid="ignore"):
        if net.loss_name == "mse":
            return float(0.5 * np.average(((Y - p) ** 2).sum(axis=1), weights=w))
        q = np.clip(p, 1e-12, 1 - 1e-12)
        if net.activations[-1] == "softmax":
            return float(-(p * np.log(q)).sum())
        return float(-(p * np.log(q) + (1 - p) * np.log(1 - q)).sum())
