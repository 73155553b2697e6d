"""fastbp: fast, loop-kernel backpropagation for multilayer perceptrons.

Public names: :class:`Network`, :class:`Trainer`, :class:`History`, and the module
:mod:`fastbp.schedules` of learning-rate schedules.
"""
from fastbp import schedules
from fastbp.network import Network
from fastbp.trainer import History, Trainer

__all__ = ["History", "Network", "Trainer", "schedules"]
__version__ = "0.1.0"
