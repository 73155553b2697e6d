"""What a fit records per epoch (``History``) and the bookkeeping that fills it
(``EpochLog``), one for ``Trainer.fit`` and ``fastbp.Sweep`` alike."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class History:
    """What ``Trainer.fit`` records, one entry per epoch.

    loss : mean per-sample cost of the samples seen in the epoch, each computed in the
        forward pass that produced its gradient (no L2 term).
    val_loss : mean per-sample cost on ``validation_data`` after the epoch (empty without it).
    seconds : wall time of each epoch's training; validation, and compiling or loading the
        kernels from Numba's cache on a first run, excluded.
    learning_rate : the rate the lr_schedule gave each epoch.
    best_epoch : index into these lists of the epoch with the lowest monitored loss
        (val_loss if given), -1 before any epoch. The lists count from 0, messages count
        epochs from 1: ``best_epoch == 2`` is the third epoch, "epoch 3" in messages.
    stopped_early : True when early stopping or the callback ended training.
    diverged : True when training stopped because the loss was no longer finite (in a
        Sweep; Trainer.fit raises FloatingPointError instead).
    interrupted : True when the fit ended by an exception (KeyboardInterrupt,
        FloatingPointError): the lists hold the epochs completed before it. The exception
        carries this History as ``exc.history`` (a Sweep's: ``exc.result``);
        ``trainer.history`` is it too.
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    diverged: bool = False
    interrupted: bool = False

    @property
    def epochs(self) -> int:
        return len(self.loss)


class EpochLog:
    """The bookkeeping of one fit's finished epochs: each into the History and into the
    trainer's own counts (``trainer.epoch``, ``trainer.monitored``, which the learning-rate
    schedules read), the best epoch -- the lowest monitored loss, val_loss where there is
    validation data, else loss; a NaN is never better -- and, with patience, its
    parameters and when to stop."""

    def __init__(self, trainer, history, patience=None, restore_best=True):
        self.trainer, self.history, self.patience = trainer, history, patience
        self.keep_best = patience is not None and restore_best
        self.best, self.best_params = math.inf, None

    def record(self, lr, loss, seconds, val_loss=None, params=None):
        """One finished epoch; ``params``, the parameters it ended with, are copied when
        they are the best so far and patience keeps the best. Returns whether patience
        says stop (then ``stop_early``)."""
        h, tr = self.history, self.trainer
        h.learning_rate.append(lr)
        h.seconds.append(seconds)
        h.loss.append(loss)
        if val_loss is not None:
            h.val_loss.append(val_loss)
        monitored = loss if val_loss is None else val_loss
        tr.epoch += 1
        tr.monitored.append(monitored)
        index = h.epochs - 1
        if monitored < self.best:
            self.best, h.best_epoch = monitored, index
            if self.keep_best:
                self.best_params = params.copy()
        return self.patience is not None and index - h.best_epoch >= self.patience

    def record_many(self, rates, losses, seconds):
        """Epochs of one many-epoch call (no validation, no patience), as ``record`` would
        put them one by one, in one pass: for tiny networks per-epoch Python would cost
        more than the epochs."""
        h, tr = self.history, self.trainer
        k = len(losses)
        rates = rates[:k]
        if k and (rates == rates[0]).all():  # one float object k times: a list of k equal
            h.learning_rate.extend([float(rates[0])] * k)  # floats in a fifth of the time
        else:
            h.learning_rate.extend(rates.tolist())
        h.seconds.extend([seconds] * k)
        as_floats = losses.tolist()
        h.loss.extend(as_floats)
        tr.monitored.extend(as_floats)
        tr.epoch += k
        ranked = np.where(np.isnan(losses), np.inf, losses)  # NaN never counts as better
        i = int(np.argmin(ranked))  # the first of equal minima, as one by one
        if ranked[i] < self.best:
            self.best, h.best_epoch = float(ranked[i]), h.epochs - k + i

    def stop_early(self, params):
        """Marks the History stopped early and, where kept, puts the best epoch's
        parameters into ``params``."""
        self.history.stopped_early = True
        if self.best_params is not None:
            params[...] = self.best_params
