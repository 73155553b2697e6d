"""Input scaling that travels with a network.

A network trained on standardized inputs must see every later input standardized the same
way, with the statistics of its training data. ``InputScaling`` holds them; a network
given one (``net.input_scaling = InputScaling.fit(X_train)``, or
``net.fit_input_scaling(X_train)``) applies it to every input it takes -- forward,
predict, predict_proba, score, loss, gradients, and a Trainer's fit and step -- and
``save``/``load`` keep it, so a saved model predicts from raw data.

    x' = (x - offset) / scale, per input feature

``fastbp train`` standardizes by default (``--no-scale`` turns it off), from the training
split only.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray


class InputScaling:
    """Per-feature ``(x - offset) / scale`` of a network's inputs.

    Parameters
    ----------
    offset, scale : array_like (D[0],)
        Finite numbers; every scale > 0.

    Attributes
    ----------
    offset, scale : ndarray (D[0],) float64, read-only
    """

    def __init__(self, offset: ArrayLike, scale: ArrayLike) -> None:
        offset = np.array(offset, dtype=np.float64, ndmin=1)
        scale = np.array(scale, dtype=np.float64, ndmin=1)
        if offset.ndim != 1 or offset.shape != scale.shape:
            raise ValueError(f"input scaling: offset and scale must be two 1-D arrays of "
                             f"one value per input; got shapes {offset.shape} and {scale.shape}")
        if not (np.isfinite(offset).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("input scaling: offset must be finite and scale finite and > 0")
        offset.flags.writeable = scale.flags.writeable = False
        self.offset, self.scale = offset, scale

    @classmethod
    def fit(cls, X: ArrayLike) -> InputScaling:
        """Standardization from the rows of X (n, D): offset the column means, scale the
        column standard deviations (1 where a column is constant, so it maps to 0)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 1:
            raise ValueError(f"input scaling is fitted on a 2-D X with at least one row; got "
                             f"shape {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("input scaling: X contains NaN or infinite values")
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        # A spread far below the mean's own rounding is a constant column.
        constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
        return cls(mean, np.where(constant, 1.0, std))

    def __len__(self) -> int:
        return self.offset.shape[0]

    def apply(self, X: ArrayLike, dtype: DTypeLike) -> NDArray[Any]:
        """(X - offset) / scale for X (n, D), computed in float64 and returned as a new
        C-contiguous array of ``dtype``."""
        return np.ascontiguousarray((X - self.offset) / self.scale, dtype=dtype)

    def arrays(self) -> dict[str, NDArray[np.float64]]:
        """The entries a saved network holds for it."""
        return dict(input_offset=self.offset, input_scale=self.scale)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, InputScaling) and np.array_equal(self.offset, other.offset)
                and np.array_equal(self.scale, other.scale))

    def __repr__(self) -> str:
        return f"InputScaling({len(self)} inputs)"
