"""Input checks at the public boundary: convert once, fail early, name the argument."""
import math
import numbers

import numpy as np

DTYPES = ("float32", "float64")


def as_dtype(dtype):
    """np.dtype for "float32" / "float64" (or the NumPy types themselves). None is refused
    (NumPy would read it as float64): the caller resolves a default first."""
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except (TypeError, ValueError):
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    return dt


def numeric(name, value):
    """value as an array of real numbers (bool, int, uint or float); TypeError otherwise."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got an array of dtype {arr.dtype}")
    return arr


def _check_finite(name, arr):
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise ValueError(f"{name} contains NaN or infinite values (first in row {row}, "
                         f"after conversion to {arr.dtype})")


def _kernel_ready(arr, dtype):
    """C-contiguous, writable, of dtype: read-only input (joblib's memory maps) would make
    Numba compile a second specialization of every kernel."""
    with np.errstate(over="ignore"):  # an overflow is reported by _check_finite, by name
        arr = np.ascontiguousarray(arr, dtype=dtype)
    return arr if arr.flags.writeable else arr.copy()


def as_inputs(X, n_in, dtype, name="X"):
    """X as a C-contiguous (n, n_in) array of dtype, and whether it was one 1-D sample."""
    arr = numeric(name, X)
    single = arr.ndim == 1
    if single:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D (one sample) or 2-D (samples x features); "
                         f"got {arr.ndim} dimensions")
    if arr.shape[1] != n_in:
        raise ValueError(f"{name} has {arr.shape[1]} columns; the network expects {n_in}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    arr = _kernel_ready(arr, dtype)
    _check_finite(name, arr)
    return arr, single


def as_targets(Y, n, n_out, labels_ok, probabilities, dtype, name="Y"):
    """Y as a C-contiguous (n, n_out) array of dtype.

    labels_ok: a 1-D array of integer class labels is one-hot encoded (softmax output).
    probabilities: targets must lie in [0, 1] (cross-entropy).
    """
    arr = numeric(name, Y)
    if arr.ndim == 1 and labels_ok:
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} labels; X has {n} rows")
        if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            raise ValueError(f"{name} as a 1-D array must hold integer class labels")
        if arr.size and (arr.min() < 0 or arr.max() >= n_out):
            raise ValueError(f"{name} holds class labels outside 0..{n_out - 1}; "
                             f"got {arr.min()}..{arr.max()}")
        onehot = np.zeros((n, n_out), dtype=dtype)
        onehot[np.arange(n), arr.astype(np.int64)] = 1
        return onehot
    if arr.ndim == 1 and n_out == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape != (n, n_out):
        hint = " (or 1-D integer class labels)" if labels_ok else ""
        raise ValueError(f"{name} must have shape ({n}, {n_out}){hint}; got {arr.shape}")
    arr = _kernel_ready(arr, dtype)
    _check_finite(name, arr)
    if probabilities and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1] for the cross_entropy loss; "
                         f"got values in [{arr.min()}, {arr.max()}]")
    return arr


def as_sample_weight(sample_weight, n, dtype, name="sample_weight"):
    """Per-sample weights as a C-contiguous (n,) array of dtype -- finite, >= 0, not all
    zero -- or an empty array for None (every weight 1)."""
    if sample_weight is None:
        return np.empty(0, dtype)
    arr = numeric(name, sample_weight)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one weight per sample; got {arr.shape}")
    arr = _kernel_ready(arr, dtype)
    _check_finite(name, arr)
    if (arr < 0).any():
        raise ValueError(f"{name} must not be negative; got {arr.min()}")
    if not arr.any():
        raise ValueError(f"{name} is zero everywhere: there is nothing to learn from")
    return arr


def threads(value, name="threads"):
    """None (the default thread count) or a positive number of threads."""
    return None if value is None else positive_int(name, value)


def rng(name, seed):
    """numpy.random.Generator from None, an int >= 0, a SeedSequence or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed_value(name, seed))


def seed_value(name, seed):
    """seed, checked as ``rng`` takes it, without making a generator (about 15 us)."""
    if type(seed) is int and seed >= 0:  # the common case, without the ABC checks below
        return seed
    if isinstance(seed, bool) or not (seed is None or isinstance(
            seed, (numbers.Integral, np.random.Generator, np.random.SeedSequence,
                   np.random.BitGenerator))):
        raise TypeError(f"{name} must be None, an integer >= 0 or a numpy.random.Generator; "
                        f"got {seed!r}")
    if isinstance(seed, numbers.Integral) and seed < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {seed!r}")
    return seed


def whole(name, value, low=0):
    """An integer >= low; a float that is a whole number (as from "key=3" text) is taken,
    2.7 is refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if isinstance(value, numbers.Integral):
        value = int(value)
    elif not (math.isfinite(value) and float(value).is_integer()):
        raise ValueError(f"{name} must be a whole number >= {low}; got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be a whole number >= {low}; got {value!r}")
    return int(value)


def positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def real(name, value, low=0.0, low_inclusive=True, high=None):
    """A finite real number >= low (or > low), and < high if given."""
    if type(value) is not float and (isinstance(value, bool)
                                     or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    value = float(value)
    ok = math.isfinite(value) and (value >= low if low_inclusive else value > low)
    if high is not None:
        ok = ok and value < high
    if not ok:
        bound = (">= " if low_inclusive else "> ") + str(low)
        if high is not None:
            bound += f" and < {high}"
        raise ValueError(f"{name} must be a finite number {bound}; got {value!r}")
    return value


def choice(name, value, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}; got {value!r}")
    return value


def own_arrays(obj):
    """Replace read-only array attributes of obj by writable copies (after unpickling:
    joblib hands large arrays back as read-only memory maps, and parameters and
    optimizer state are updated in place)."""
    for name, value in vars(obj).items():
        if isinstance(value, np.ndarray) and not value.flags.writeable:
            setattr(obj, name, value.copy())
