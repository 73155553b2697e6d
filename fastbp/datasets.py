"""Data sets that ship with fastbp."""
from importlib import resources

import numpy as np


def load_digits(dtype="float32"):
    """The 1797 8x8 handwritten digits (UCI; the set scikit-learn also ships).

    Returns
    -------
    X : ndarray (1797, 64) of dtype, pixel intensities scaled to [0, 1]
    y : ndarray (1797,) int64, the digit 0..9
    """
    with resources.files("fastbp").joinpath("data/digits.npz").open("rb") as f:
        data = np.load(f)
        X = data["images"].astype(dtype) / 16
        y = data["labels"].astype(np.int64)
    return X, y
