"""Shared test helpers: tolerances by dtype, comparisons that name what failed, data."""
import contextlib
import importlib
import itertools
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


def run_asv_suite(cls):
    """Every parameter combination of an asv suite once, as asv runs it: setup (a
    NotImplementedError skips the combination), each time_/track_ benchmark (a track
    must be positive), teardown. Returns how many combinations ran."""
    ran = 0
    for params in itertools.product(*cls.params):
        bench = cls()
        try:
            bench.setup(*params)
        except NotImplementedError:
            continue  # e.g. cuda without a GPU, FANN not installed: asv skips it the same way
        try:
            for name in dir(cls):
                if name.startswith(("time_", "track_")):
                    result = getattr(bench, name)(*params)
                    assert result is None or result > 0, (name, params)
        finally:
            if hasattr(bench, "teardown"):
                bench.teardown(*params)
        ran += 1
    return ran
