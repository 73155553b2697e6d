"""Memory hooks of the CPU backends: their kernels take host arrays as they are.

Every backend module exports ``empty``, ``to_device`` and ``to_host``; the cuda backend
moves data to and from the GPU with them, so the trainer reads alike for all backends.
"""
import numpy as np


def empty(shape, dtype):
    """An uninitialized workspace the kernels accept."""
    return np.empty(shape, dtype)


def to_device(array):
    """The array as the kernels take it (a host array: itself)."""
    return array


def to_host(array, out):
    """Copy a kernel array into the host array ``out`` (nothing to do when it is ``out``)."""
    if array is not out:
        np.copyto(out, array)
    return out
