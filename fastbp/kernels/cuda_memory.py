"""Device memory of the cuda backend: the memory hooks of the contract (``workspace_rows``,
``empty``, ``to_device``, ``to_host``), a kernel call's arguments moved to the GPU and its
outputs back, and the small device arrays kept per context between calls.

A kernel of ``cuda.py`` takes device arrays (nothing is copied) or host NumPy arrays
(copied to the GPU once per call, the outputs copied back into the same host arrays):
``on_device`` and ``copy_back`` do both; ``host_array`` and ``set_steps`` read and write
the small arrays (steps, stats) wherever they are. Scratch arrays live in
``cuda_config.device_cache()``, which starts afresh after ``cuda.close()``, on another
device and in a forked child. ``cuda.py`` re-exports the memory hooks.
"""
import numpy as np

from fastbp.kernels import cuda_config as config
from fastbp.kernels.cuda_config import cuda


# -- memory hooks ---------------------------------------------------------------------------

def workspace_rows(batch_size):
    """Rows that train_epoch's workspaces A, Dl, cost, Yb and Sb need for this batch size."""
    return min(batch_size, config.WORK_ROWS)


def empty(shape, dtype):
    """An uninitialized device array."""
    return cuda.device_array(shape, dtype)


def to_device(array):
    """A device copy of a host array (a device array is returned as it is)."""
    if not isinstance(array, np.ndarray):
        return array
    return cuda.to_device(np.ascontiguousarray(array))


def to_host(array, out):
    """Copy ``array`` (device or host) into the host array ``out``; return ``out``."""
    if isinstance(array, np.ndarray):
        if array is not out:
            np.copyto(out, array)
    elif out.flags.c_contiguous:
        array.copy_to_host(out)
    else:
        out[...] = array.copy_to_host()
    return out


# -- a call's arguments -------------------------------------------------------------------------

def on_device(*arrays):
    """Each array on the device (``to_device``: host arrays copied, device arrays as they are)."""
    return [to_device(a) for a in arrays]


def copy_back(device, host):
    """Copy a kernel's output back when the caller gave a host array."""
    if isinstance(host, np.ndarray):
        to_host(device, host)


def host_array(array):
    """A host view of a small array, given on the host or on the device."""
    return array if isinstance(array, np.ndarray) else array.copy_to_host()


def set_steps(steps, value):
    """steps[0] = value, steps on the host or on the device."""
    if isinstance(steps, np.ndarray):
        steps[0] = value
    else:
        steps.copy_to_device(np.array([value], np.int64))


# -- device arrays kept per context ---------------------------------------------------------------

def no_stop():
    """A device stats array whose divergence flag is never set (for update)."""
    cache = config.device_cache()
    if "no_stop" not in cache:
        cache["no_stop"] = cuda.to_device(np.zeros(4))
    return cache["no_stop"]


def scratch_array(name, size, dtype):
    """A device array of at least ``size`` elements, kept per context and reused."""
    cache = config.device_cache()
    key = (name, np.dtype(dtype).str)
    array = cache.get(key)
    if array is None or array.shape[0] < size:
        array = cache[key] = cuda.device_array(max(size, 1), dtype)
    return array
