"""Trainer: online, mini-batch and full-batch gradient descent over a Network."""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastbp import _fit_loop, _trainer_state, _validate, backends, schedules
from fastbp.kernels import codes
from fastbp._session import Session, interrupts_at_safe_points
from fastbp._npz import NpzReader, write_npz
from fastbp.history import History
from fastbp.network import FEW_ROWS, Network

SCHEDULES = ("online", "minibatch", "fullbatch")


def _pair(name, value, low, high):
    """Two finite numbers > low (and < high if given)."""
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers; got {value!r}") from None
    return (_validate.real(name, a, low, False, high), _validate.real(name, b, low, False, high))


# Samples per compiled call when whole epochs run in one call (fits that need nothing from
# Python between epochs): Ctrl-C and trainer.history stay this responsive.
_SAMPLES_PER_FIT_CALL = 1 << 21


class Trainer:
    """Gradient descent on a :class:`~fastbp.Network` with one of three update schedules.

    Parameters
    ----------
    net : Network
        Trained in place. Assigning ``trainer.net`` another network later resets the
        optimizer state and the epoch count (:meth:`reset`).
    schedule : {"online", "minibatch", "fullbatch"}, default "minibatch"
        ``online``: one update per sample; ``minibatch``: one per ``batch_size`` samples
        (the last batch may be smaller); ``fullbatch``: one per epoch.
    batch_size : int, default 32
        Used by ``minibatch`` only.
    learning_rate : float, default 0.1
        Step size, > 0.
    momentum : float, default 0.0
        Classical momentum in [0, 1), as ``torch.optim.SGD``: ``v <- momentum * v + g``,
        ``w <- w - learning_rate * v``.
    nesterov : bool, default False
        Nesterov momentum (``w <- w - learning_rate * (g + momentum * v)``); needs momentum > 0.
    l2 : float, default 0.0
        L2 penalty ``(l2 / 2) * sum W**2`` on the weights (not the biases); adds ``l2 * W``
        to the weight gradient.
    shuffle : bool, default True
        Visit the samples in a new random order every epoch.
    seed : int (>= 0), numpy.random.Generator or None
        Seeds the shuffling: the same seed and initial weights give bit-identical results.
    backend : {"loop", "vectorized", "cuda", "auto"}, default "loop"
        ``loop`` runs every epoch inside compiled code, whatever the schedule. ``auto``
        picks, at each fit or step, ``cuda`` where a GPU is there and the cost model
        predicts it faster for this network and batch size, else ``loop``
        (``fastbp.backends.pick``); ``backend_used`` and ``backend_reason`` say which and
        why, and so does ``repr``.
    optimizer : {"sgd", "adam", "rprop"}, default "sgd"
        How each update uses the gradient g (L2 term included), per parameter, as
        ``torch.optim`` computes it: ``sgd`` steps ``learning_rate * g`` (with momentum
        if set); ``adam`` scales the step per connection by running moments of g
        (``betas``, ``eps``); ``rprop`` (iRprop-, FANN's default for full-batch training)
        uses only the sign of g, with a step size per connection that grows by
        ``etas[1]`` while the sign holds and shrinks by ``etas[0]`` when it flips,
        within ``step_sizes``; ``learning_rate`` is its initial step size.
    betas, eps : Adam's moment decay rates (default (0.9, 0.999)) and denominator term (1e-8).
    etas, step_sizes : RPROP's (decrease, increase) factors (default (0.5, 1.2)) and
        (smallest, largest) step size (default (1e-6, 50)).
    lr_schedule : None, str or schedule, default None (constant)
        How the learning rate changes per epoch: an object from :mod:`fastbp.schedules`
        (``InverseScaling``, ``StepDecay``, ``ReduceOnPlateau``) or its text form, such
        as ``"invscaling:decay=0.1,power=0.5"`` or ``"plateau:factor=0.5,patience=3"``.
        Every epoch's rate is checked (a finite number >= 0).
    threads : int or None, default None
        CPU threads the ``loop`` kernels may use (Numba's thread count, set for this
        trainer's calls only). None: ``fastbp._session.auto_threads`` -- one thread
        where a batch is too small for threads to pay, else the cores not busy with
        other work. Results do not depend on it.

    Attributes
    ----------
    state : ndarray (2, P)
        Optimizer state laid out like ``net.params`` (SGD: velocity in row 0; Adam: first
        and second moments; RPROP: previous gradient and step sizes). Kept across
        ``fit`` and ``step`` calls and stored by :meth:`save`.
    epoch : int
        Epochs trained so far by this trainer, across ``fit`` calls (drives lr_schedule).
    history : History
        The History of the latest ``fit``, filled while it runs (kept when it is
        interrupted).
    """

    def __init__(self, net: Network, schedule: str = "minibatch", batch_size: int = 32,
                 learning_rate: float = 0.1, momentum: float = 0.0, nesterov: bool = False,
                 l2: float = 0.0, shuffle: bool = True,
                 seed: int | np.random.Generator | None = None, backend: str = "loop",
                 optimizer: str = "sgd", betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50.0),
                 lr_schedule: str | schedules.Schedule | None = None,
                 threads: int | None = None) -> None:
        self._net = _check_net(net)
        self.schedule = _validate.choice("schedule", schedule, SCHEDULES)
        self.batch_size = _validate.positive_int("batch_size", batch_size)
        self.learning_rate = _validate.real("learning_rate", learning_rate, 0.0, False)
        self.optimizer = _validate.choice("optimizer", optimizer, codes.OPTIMIZERS)
        self.momentum = _validate.real("momentum", momentum, 0.0, True, high=1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(f"momentum applies to optimizer='sgd' only; got {optimizer!r}")
        self.l2 = _validate.real("l2", l2, 0.0)
        self.betas: tuple[float, float] = _pair("betas", betas, 0.0, 1.0)
        self.eps = _validate.real("eps", eps, 0.0, False)
        self.etas = _pair("etas", etas, 0.0, None)
        if not self.etas[0] < 1.0 < self.etas[1]:
            raise ValueError(f"etas must be (decrease < 1, increase > 1); got {etas!r}")
        self.step_sizes = _pair("step_sizes", step_sizes, 0.0, None)
        if not self.step_sizes[0] < self.step_sizes[1]:
            raise ValueError(f"step_sizes must be (smallest, largest); got {step_sizes!r}")
        self.lr_schedule = schedules.as_schedule(lr_schedule)
        self.shuffle = bool(shuffle)
        self.backend = _validate.choice("backend", backend, backends.CHOICES)
        self.threads = _validate.threads(threads)
        self._use(backend if backend != "auto" else "loop", "not yet resolved: no fit yet")
        self.rng = _validate.rng("seed", seed)
        self.history = History()
        self.reset()

    @property
    def net(self) -> Network:
        return self._net

    @net.setter
    def net(self, net: Network) -> None:
        # The optimizer state is laid out like the network's params: another network gets
        # a fresh one (the kernels index both with the network's sizes).
        _check_net(net)
        if net is not self._net:
            self._net = net
            self.reset()

    def _check_ready(self):
        """Before every fit and step: the optimizer state fits the network (the kernels
        index both with its sizes), whatever was assigned to ``state`` or ``steps``."""
        P, dtype = self._net.n_params, self._net.dtype
        for name, value, shape, dt in (("state", self.state, (2, P), dtype),
                                       ("steps", self.steps, (1,), np.dtype(np.int64))):
            if not (isinstance(value, np.ndarray) and value.shape == shape and value.dtype == dt
                    and value.flags.c_contiguous and value.flags.writeable):
                got = (f"{value.dtype} array of shape {value.shape}"
                       if isinstance(value, np.ndarray) else type(value).__name__)
                raise ValueError(f"trainer.{name} must be a writable C-contiguous {dt} array "
                                 f"of shape {shape} for this network; got {got} "
                                 "(trainer.reset() makes a fresh one)")

    def reset(self) -> None:
        """Forget the optimizer state and the epoch count (the network is left as it is)."""
        self.state = np.zeros((2, self.net.n_params), self.net.dtype)
        if self.optimizer == "rprop":
            self.state[1] = self.learning_rate  # initial step sizes
        self.steps = np.zeros(1, np.int64)  # updates made (Adam's bias correction)
        self.epoch = 0
        # per epoch: val_loss if fit had validation data, else loss
        self.monitored: list[float] = []

    def __getstate__(self):
        # The kernel module cannot be pickled; it is looked up again from the backend name.
        # Nor can the lock of a running fit: a copy is never running.
        return {k: v for k, v in vars(self).items() if k not in ("kernels", "_running")}

    @contextlib.contextmanager
    def _exclusive(self, what):
        """Around fit and step: they write the network, the optimizer state and the
        generator in place, so a second call while one runs -- from another Python
        thread, or from a callback -- would interleave their updates. It raises instead."""
        lock = vars(self).setdefault("_running", threading.Lock())
        if not lock.acquire(blocking=False):
            raise RuntimeError(f"Trainer.{what}: this trainer is already training (fit or "
                               "step running in another thread, or called from its own "
                               "callback); one trainer trains one thing at a time -- give "
                               "each thread its own Trainer and Network")
        try:
            yield
        finally:
            lock.release()

    def __setstate__(self, state):
        if "net" in state:  # pickled before net became a property
            state["_net"] = state.pop("net")
        vars(self).update(state)
        vars(self).setdefault("threads", None)  # pickled before the option existed
        vars(self).setdefault("history", History())
        _validate.own_arrays(self)
        self._use(vars(self).get("backend_used", self.backend),
                  vars(self).get("backend_reason", ""))

    def _use(self, name, reason):
        """Run on backend ``name`` (the kernels' module) from now on, for ``reason``."""
        self.kernels = backends.get(name)
        self.backend_used, self.backend_reason = name, reason

    def resolve_backend(self, batch_rows: int) -> None:
        """With backend="auto", pick the backend for batches of ``batch_rows`` samples (each
        fit and step does; drivers such as Sweep call it before running epochs)."""
        if self.backend == "auto":
            self._use(*backends.pick("auto", self.net.layer_sizes, batch_rows))

    def __repr__(self) -> str:
        backend = repr(self.backend)
        if self.backend == "auto":
            backend += f" ({self.backend_reason})"
        return (f"Trainer({self.net!r}, schedule={self.schedule!r}, "
                f"batch_size={self.batch_size}, optimizer={self.optimizer!r}, "
                f"learning_rate={self.learning_rate:g}, backend={backend})")

    @property
    def velocity(self) -> NDArray[np.floating]:
        """SGD momentum buffer, laid out like ``net.params`` (row 0 of ``state``)."""
        return self.state[0]

    def hyperparameters(self, lr: float | None = None) -> NDArray[np.float64]:
        """The (N_HYPER,) float64 array of this trainer's hyperparameters that the kernels
        take (slots fastbp.kernels.codes.H_*), with learning rate ``lr`` (default: the
        trainer's own)."""
        lr = self.learning_rate if lr is None else lr
        h = np.zeros(codes.N_HYPER)
        h[codes.H_LR], h[codes.H_MOMENTUM] = lr, self.momentum
        h[codes.H_NESTEROV], h[codes.H_L2] = float(self.nesterov), self.l2
        h[codes.H_BETA1], h[codes.H_BETA2], h[codes.H_EPS] = *self.betas, self.eps
        h[codes.H_ETA_MINUS], h[codes.H_ETA_PLUS] = self.etas
        h[codes.H_STEP_MIN], h[codes.H_STEP_MAX] = self.step_sizes
        return h

    def batch_rows(self, n: int) -> int:
        """Samples per update when training on n samples: 1 online, batch_size (at most n)
        in mini-batches, n in full batch."""
        return {"online": 1, "minibatch": min(self.batch_size, n), "fullbatch": n}[self.schedule]

    def step(self, X: ArrayLike, Y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Exactly one update from the mean gradient over the rows of X (with
        ``sample_weight``, the weighted mean); returns their (weighted) mean cost.

        Raises RuntimeError while this trainer's ``fit`` or ``step`` runs (another thread)."""
        with self._exclusive("step"):
            return self._step(X, Y, sample_weight)

    def _step(self, X, Y, sample_weight):
        self._check_ready()
        cost = None if sample_weight is not None else self._step_few(X, Y)
        if cost is not None:
            return cost
        X, _ = self.net.as_inputs(X)
        Y = self.net.as_targets(Y, X.shape[0])
        n = X.shape[0]
        sw = _validate.as_sample_weight(sample_weight, n, self.net.dtype)
        self.resolve_backend(n)
        total, weight = Session(self, X, Y, sw, n).run(np.arange(n, dtype=np.int64))
        return total / weight

    def _step_few(self, X, Y):
        """step on the loop backend for up to FEW_ROWS rows given as the kernels take them
        (X and Y ndarrays of the network's dtype, C-contiguous and writable, Y (n, D[L]);
        no input scaling, no sample weights) in one compiled call -- the same numbers -- or
        None for the checked path, which also reports bad values and divergence (the lean
        call is put back first): a streaming learner calling step on one row would
        otherwise spend nearly all its time in Python."""
        net = self._net
        if self.backend != "loop" or net.input_scaling is not None:
            return None
        if not all(type(a) is np.ndarray and a.dtype == net.dtype and a.ndim == 2
                   and a.flags.c_contiguous and a.flags.writeable for a in (X, Y)):
            return None
        sizes = net.layer_sizes
        n = X.shape[0]
        if X.shape[1] != sizes[0] or Y.shape != (n, sizes[-1]) or not 0 < n <= FEW_ROWS:
            return None
        stats = np.zeros(4)
        if not self.kernels.step_few(X, Y, net.params, self.state, self.steps,
                                     np.array(sizes, np.int64), net.act_codes, net.loss_code,
                                     codes.OPTIMIZERS[self.optimizer], self.hyperparameters(),
                                     net.bias, net.loss_name == "cross_entropy", stats):
            return None
        return float(stats[0]) / float(stats[3])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network, this trainer's settings and its full state (optimizer state,
        update and epoch counts, shuffling generator) to ``path`` (``.npz``, atomically),
        so that :meth:`load` resumes training with the same result as never stopping.

        Only a regular file is ever replaced (as :meth:`Network.save`): where ``path``
        (after following symbolic links) is a folder this raises IsADirectoryError, where it
        is a FIFO, a device (such as ``/dev/null``) or a socket, OSError; both name the path
        and what is there, and leave it as it is.
        """
        write_npz(path, {**self.net.arrays(), **_trainer_state.entries(self)})

    @classmethod
    def load(cls, path: str | os.PathLike[str], backend: str | None = None) -> Trainer:
        """A Trainer (with its Network) written by :meth:`save`, ready to resume.

        ``backend`` overrides the saved one. A file saved with ``backend="cuda"`` loads onto
        the ``loop`` backend, with a RuntimeWarning, where CUDA is not available (the
        numbers are the same). Raises ValueError naming the file for one that is not a sound
        saved trainer: a file from ``Network.save`` (no trainer state), a truncated or
        altered file, negative epoch or update counts, non-finite optimizer state, a bad
        generator state. Entries are read one at a time, each within bounds and checked
        first (as :meth:`Network.load`); the optimizer state is read, after every smaller
        entry has been checked, straight into the trainer's own buffer.
        """
        with NpzReader(path) as reader:
            net = Network.from_reader(reader)
            with reader.checking("fastbp trainer file"):
                trainer = _trainer_state.read(cls, reader, net, backend, path)
        return trainer

    def fit(self, X: ArrayLike, Y: ArrayLike, epochs: int = 10,
            validation_data: tuple[ArrayLike, ArrayLike] | None = None, progress: bool = False,
            patience: int | None = None, restore_best: bool = True,
            callback: Callable[[int, History], Any] | None = None,
            sample_weight: ArrayLike | None = None) -> History:
        """Train for ``epochs`` passes over (X, Y).

        Parameters
        ----------
        X : array_like (n, D[0])
        Y : array_like (n, D[L]), or 1-D integer class labels for a softmax output
        epochs : int
        validation_data : (X_val, Y_val), optional
            Evaluated after every epoch into ``history.val_loss``.
        progress : bool
            Show a tqdm progress bar with the running loss.
        patience : int, optional
            Early stopping: stop after this many epochs without a new best monitored
            loss (``val_loss`` when validation data is given, else ``loss``).
        restore_best : bool, default True
            With ``patience``, put back the weights of the best epoch when stopping.
        callback : callable(epoch, history) -> bool, optional
            Called after every epoch with the epoch's index into the history lists (0 for
            the first); returning True stops training.
        sample_weight : array_like (n,), optional
            Non-negative weight of each sample: every update follows the weighted mean
            gradient of its batch, sum w_s g_s / sum w_s, and ``history.loss`` is the
            weighted mean cost. (With batches of one sample a weight cancels out, except
            that a sample of weight 0 makes no update.)

        Notes
        -----
        Every argument is checked before anything changes. On the ``loop`` backend a fit
        that needs nothing from Python between epochs (no validation data, callback,
        progress bar, patience, nor a schedule that reads the losses) runs many epochs per
        compiled call, with the same result bit for bit.

        Returns
        -------
        History
            Also ``trainer.history``, filled while the fit runs.

        Raises
        ------
        FloatingPointError
            If the loss becomes NaN or infinite ("epoch N: the loss is not finite after M
            samples ...", epochs counted from 1). The network and the optimizer state are
            put back where the epoch began (or earlier, where that network's own loss on X
            is not finite), so ``net.loss`` is finite and a fit at a smaller rate can go
            on. The exception's ``history`` holds the epochs completed.
        ValueError
            For bad arguments, or when the lr_schedule gives a rate that is not a finite
            number >= 0 (naming the schedule and the epoch).
        KeyboardInterrupt
            Ctrl-C stops the fit between compiled calls (about 2^16 samples within an
            epoch, 2^21 when whole epochs run per call). Within an epoch the network and
            optimizer state go back to where it began; the History, ``trainer.epoch`` and
            the network always agree. The exception's ``history`` holds the epochs done.

        Warns
        -----
        RuntimeWarning
            When, in a fit of 5 epochs or more, the loss of each of the last 3 epochs is
            over 1.5 times both the network's loss before the fit and a constant
            predictor's: the network has likely saturated (too large a learning rate,
            without the loss overflowing). The message names the learning rate.
        RuntimeError
            While this trainer's ``fit`` or ``step`` already runs (in another thread, or
            from the callback): one trainer trains one thing at a time.
        """
        with self._exclusive("fit"):
            return self._fit_checked(X, Y, epochs, validation_data, progress, patience,
                                     restore_best, callback, sample_weight)

    def _fit_checked(self, X, Y, epochs, validation_data, progress, patience, restore_best,
                     callback, sample_weight):
        self._check_ready()
        net = self.net
        epochs = _validate.positive_int("epochs", epochs)
        if patience is not None:
            patience = _validate.positive_int("patience", patience)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable as callback(epoch, history) or None; "
                            f"got {callback!r}")
        progress, restore_best = bool(progress), bool(restore_best)
        # The kernels take X through the network's input scaling; Network.loss applies it
        # itself, so it is given the data as the caller gave them (never scaled twice).
        raw = X
        X, _ = net.as_inputs(X)
        Y = net.as_targets(Y, X.shape[0])
        sw = _validate.as_sample_weight(sample_weight, X.shape[0], net.dtype)
        if validation_data is not None:
            if isinstance(validation_data, (str, bytes, dict)) or not hasattr(
                    validation_data, "__len__") or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, Y_val)")
            X_val, Y_val = validation_data
            n_val = net.as_inputs(X_val, name="validation_data X")[0].shape[0]
            Y_val = net.as_targets(Y_val, n_val, name="validation_data Y")
        bar = _progress_bar(epochs * X.shape[0]) if progress else None  # tqdm missing: here
        self.resolve_backend(self.batch_rows(X.shape[0]))
        # The loss before training, for the saturation warning (one forward pass; fits of
        # fewer epochs are never judged).
        start_loss = (net.loss(raw, Y, backend=self.backend_used,
                               sample_weight=sw if len(sw) else None)
                      if epochs >= _fit_loop.SATURATION_EPOCHS else None)
        self.history = history = History()
        try:
            with interrupts_at_safe_points() as check:
                _fit_loop.run(self, history, X, Y, sw, epochs, None if validation_data is None
                              else (X_val, Y_val), bar, patience, restore_best, callback,
                              check, raw, _SAMPLES_PER_FIT_CALL)
        except (KeyboardInterrupt, FloatingPointError) as exc:
            history.interrupted = True
            exc.history = history
            raise
        finally:
            if bar is not None:
                bar.close()
        if not history.stopped_early and start_loss is not None:
            _fit_loop.warn_if_saturated(self, history, Y, sw, start_loss)
        return history

    def next_rate(self) -> float:
        """The learning rate the lr_schedule gives the next epoch (after ``epoch`` trained
        ones), checked: a finite number >= 0, else ValueError naming the schedule. For
        drivers that run a trainer's epochs themselves, as fastbp.Sweep does."""
        return _fit_loop.rate(self, self.epoch)


def _check_net(net):
    if not isinstance(net, Network):
        raise TypeError(f"net must be a fastbp.Network; got {type(net).__name__} {net!r:.80}")
    return net


def _progress_bar(total):
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="sample", unit_scale=True, dynamic_ncols=True)
