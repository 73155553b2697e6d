"""Learning-rate schedules: how the global step size changes from epoch to epoch.

A schedule is a pure function of the epoch number, the initial rate and the losses
recorded so far, so a trainer restored from a file continues exactly where it stopped.
Each has ``rate(epoch, lr0, losses)`` and round-trips through ``to_dict`` /
:func:`from_dict` (used by ``Trainer.save``). ``epoch`` counts the epochs trained before
(0 for the first). ``needs_losses`` says whether the rate depends on the losses: when it
does not, ``Trainer.fit`` computes the rates ahead and may run many epochs in one compiled
call (a schedule of your own without the attribute is taken to need them). A schedule
may also have ``rates(first_epoch, count, lr0)``: the rates of ``count`` epochs at once,
equal to ``rate``'s one by one (``Constant`` has it: a tiny network trains an epoch in
about a microsecond, and a Python call per epoch costs a fifth of that). Every rate is
checked when used: a finite number >= 0.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from fastbp import _validate


class Schedule(Protocol):
    """What ``Trainer(lr_schedule=...)`` needs of a schedule object (for type checkers:
    the classes below have it, and so may a schedule of your own). ``needs_losses`` is
    optional: a schedule without it is taken to read the losses."""

    def rate(self, epoch: int, lr0: float, losses: Sequence[float]) -> float:
        """The learning rate of the epoch after ``epoch`` trained ones."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The schedule as a mapping that :func:`from_dict` turns back into it."""
        ...


class Constant:
    """The initial learning rate throughout."""

    needs_losses = False

    def rate(self, epoch: int, lr0: float, losses: Sequence[float]) -> float:
        return lr0

    def rates(self, first_epoch: int, count: int, lr0: float) -> NDArray[np.float64]:
        """``rate`` of epochs first_epoch .. first_epoch + count - 1, as float64."""
        return np.full(count, lr0, np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"name": "constant"}

    def __repr__(self) -> str:
        return "Constant()"


class InverseScaling:
    """``lr0 / (1 + decay * epoch) ** power`` (scikit-learn's "invscaling" over epochs)."""

    needs_losses = False

    def __init__(self, decay: float = 1.0, power: float = 0.5) -> None:
        self.decay = _validate.real("decay", decay, 0.0)
        self.power = _validate.real("power", power, 0.0)

    def rate(self, epoch: int, lr0: float, losses: Sequence[float]) -> float:
        return lr0 / (1.0 + self.decay * epoch) ** self.power

    def to_dict(self) -> dict[str, Any]:
        return {"name": "invscaling", "decay": self.decay, "power": self.power}

    def __repr__(self) -> str:
        return f"InverseScaling(decay={self.decay}, power={self.power})"


class StepDecay:
    """``lr0 * gamma ** (epoch // every)``: multiply by gamma every ``every`` epochs."""

    needs_losses = False

    def __init__(self, every: int = 10, gamma: float = 0.5) -> None:
        self.every = _validate.positive_int("every", every)
        self.gamma = _validate.real("gamma", gamma, 0.0, False)

    def rate(self, epoch: int, lr0: float, losses: Sequence[float]) -> float:
        return lr0 * self.gamma ** (epoch // self.every)

    def to_dict(self) -> dict[str, Any]:
        return {"name": "step", "every": self.every, "gamma": self.gamma}

    def __repr__(self) -> str:
        return f"StepDecay(every={self.every}, gamma={self.gamma})"


class ReduceOnPlateau:
    """Multiply the rate by ``factor`` after ``patience`` epochs in a row without the
    monitored loss (validation loss when the fit has validation data, else the training
    loss) improving on its best by more than a relative ``threshold``; never below
    ``min_lr``. As ``torch.optim.lr_scheduler.ReduceLROnPlateau`` in "rel" mode.
    ``patience`` is a whole number >= 0."""

    needs_losses = True

    def __init__(self, factor: float = 0.5, patience: int = 5, threshold: float = 1e-4,
                 min_lr: float = 0.0) -> None:
        self.factor = _validate.real("factor", factor, 0.0, False, high=1.0)
        self.patience = _validate.whole("patience", patience, 0)
        self.threshold = _validate.real("threshold", threshold, 0.0)
        self.min_lr = _validate.real("min_lr", min_lr, 0.0)

    def rate(self, epoch: int, lr0: float, losses: Sequence[float]) -> float:
        lr, best, bad = lr0, math.inf, 0
        for loss in losses[:epoch]:
            if loss < best * (1.0 - self.threshold):
                best, bad = loss, 0
            else:
                bad += 1
                if bad > self.patience:
                    lr, bad = max(lr * self.factor, self.min_lr), 0
        return lr

    def to_dict(self) -> dict[str, Any]:
        return {"name": "plateau", "factor": self.factor, "patience": self.patience,
                "threshold": self.threshold, "min_lr": self.min_lr}

    def __repr__(self) -> str:
        return (f"ReduceOnPlateau(factor={self.factor}, patience={self.patience}, "
                f"threshold={self.threshold}, min_lr={self.min_lr})")


SCHEDULES = {"constant": Constant, "invscaling": InverseScaling, "step": StepDecay,
             "plateau": ReduceOnPlateau}


def from_dict(spec: Mapping[str, Any]) -> Schedule:
    """The schedule that ``to_dict`` described."""
    spec = dict(spec)
    name = spec.pop("name")
    return SCHEDULES[_validate.choice("lr_schedule", name, SCHEDULES)](**spec)


def parse(text: str) -> Schedule:
    """A schedule from ``"name"`` or ``"name:key=value,key=value"`` (the command line form),
    e.g. ``"invscaling:decay=0.1,power=0.5"`` or ``"plateau:factor=0.5,patience=3"``."""
    name, _, args = text.partition(":")
    spec: dict[str, Any] = {"name": name}
    for item in filter(None, args.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"lr_schedule {text!r}: expected key=value, got {item!r}")
        spec[key.strip()] = float(value) if key.strip() != "every" else int(value)
    try:
        return from_dict(spec)
    except TypeError as exc:
        raise ValueError(f"lr_schedule {text!r}: {exc}") from None


def as_schedule(value: str | Schedule | None) -> Schedule:
    """None (constant), a name or spec string, or a schedule object."""
    if value is None:
        return Constant()
    if isinstance(value, str):
        return parse(value)
    if not hasattr(value, "rate") or not hasattr(value, "to_dict"):
        raise TypeError(f"lr_schedule must be None, a name such as 'invscaling', or a "
                        f"schedule from fastbp.schedules; got {value!r}")
    return value
