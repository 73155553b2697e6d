"""Shared test helpers: tolerances by dtype, comparisons that name what failed, data."""
import contextlib
import importlib
import os
import sys

import numpy as np

# Relative and absolute tolerances for comparing backends, by dtype.
TOLERANCE = {np.dtype("float64"): dict(rtol=1e-10, atol=1e-12),
             np.dtype("float32"): dict(rtol=2e-4, atol=2e-6)}


def assert_close(actual, expected, dtype, what):
    """assert_allclose with the dtype's tolerance and a message naming the tensor."""
    np.testing.assert_allclose(actual, expected, err_msg=what, **TOLERANCE[np.dtype(dtype)])


def data(n, n_in, n_out, seed=0, dtype="float64", labels=False):
    """Seeded inputs (n, n_in) and targets: labels (n,) or values in (0, 1), (n, n_out)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in)).astype(dtype)
    Y = rng.integers(0, n_out, n) if labels else rng.uniform(0.05, 0.95, (n, n_out)).astype(dtype)
    return X, Y


def reference_backend(backend):
    """What a backend is compared with: the vectorized formulation (which itself is held
    against the loop kernels, as finite differences hold it)."""
    return "loop" if backend == "vectorized" else "vectorized"


@contextlib.contextmanager
def asv_suites(name):
    """The asv module benchmarks.<name>, imported from the source tree in smoke mode
    (FASTBP_BENCH_SMOKE=1: a few batches per benchmark)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ["FASTBP_BENCH_SMOKE"] = "1"
    sys.path.insert(0, root)
    try:
        yield importlib.reload(importlib.import_module(f"benchmarks.{name}"))
    finally:
        sys.path.remove(root)
        del os.environ["FASTBP_BENCH_SMOKE"]
