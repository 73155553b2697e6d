"""fastbp: fast, loop-kernel backpropagation for multilayer perceptrons.

Public names: :class:`Network`, :class:`Trainer`, :class:`History`, :class:`Sweep`
(:class:`SweepResult`), the module
:mod:`fastbp.schedules` of learning-rate schedules; with scikit-learn installed also
:class:`MLPClassifier` and :class:`MLPRegressor` (``fastbp.estimators``).
"""
from typing import TYPE_CHECKING, Any

from fastbp import schedules
from fastbp.network import Network
from fastbp.sweep import Sweep, SweepResult
from fastbp.trainer import History, Trainer

__all__ = ["History", "Network", "Sweep", "SweepResult", "Trainer", "schedules"]
__version__ = "0.1.0"

_ESTIMATORS = ("MLPClassifier", "MLPRegressor")

if TYPE_CHECKING:  # for type checkers: at run time they load on first use (__getattr__)
    from fastbp.estimators import MLPClassifier, MLPRegressor


def __getattr__(name: str) -> Any:
    # scikit-learn is optional: the estimators (and sklearn) load on first use only.
    if name in _ESTIMATORS:
        from fastbp import estimators
        return getattr(estimators, name)
    raise AttributeError(f"module 'fastbp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_ESTIMATORS])
