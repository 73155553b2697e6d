"""fastbp: fast, loop-kernel backpropagation for multilayer perceptrons.

Public names: :class:`Network`, :class:`Trainer`, :class:`History`.
"""
from fastbp.network import Network
from fastbp.trainer import History, Trainer

__all__ = ["History", "Network", "Trainer"]
__version__ = "0.1.0"
