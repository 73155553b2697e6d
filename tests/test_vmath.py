"""vmath's float32 exp, sigmoid and tanh: accuracy against float64 libm, NaN kept, and
float64 and non-CPU targets left to libm."""
import numpy as np
import pytest
from numba import njit

from fastbp._config import JIT
from fastbp.kernels import vmath


@njit(**JIT)
def _apply(x, out, which):
    one = x.dtype.type(1)
    for i in range(x.shape[0]):  # the loop a kernel would vectorize
        if which == 0:
            out[i] = vmath.exp(x[i])
        elif which == 1:
            out[i] = vmath.sigmoid(x[i], one)
        else:
            out[i] = vmath.tanh(x[i])


REFERENCES = {0: np.exp, 1: lambda x: 1 / (1 + np.exp(-x)), 2: np.tanh}
# Measured: exp 8.4e-8, sigmoid 1.4e-7, tanh 2.6e-7 (1-5 ulp); bounds with margin.
BOUNDS = {0: 2e-7, 1: 4e-7, 2: 6e-7}


@pytest.mark.parametrize("which", [0, 1, 2], ids=["exp", "sigmoid", "tanh"])
def test_float32_forms_are_within_a_few_ulp(which):
    x = np.linspace(-30, 30, 200_001).astype(np.float32)
    out = np.empty_like(x)
    _apply(x, out, which)
    ref = REFERENCES[which](x.astype(np.float64))
    rel = np.abs(out - ref) / np.maximum(np.abs(ref), np.finfo(np.float32).tiny)
    assert rel.max() < BOUNDS[which], f"max relative error {rel.max():.3g}"


@pytest.mark.parametrize("which", [0, 1, 2], ids=["exp", "sigmoid", "tanh"])
def test_nan_stays_nan_and_extremes_stay_finite(which):
    x = np.array([np.nan, 100.0, -100.0, 0.0], np.float32)
    out = np.empty_like(x)
    _apply(x, out, which)
    assert np.isnan(out[0]), "a NaN input must come out NaN: divergence is detected by it"
    assert np.isfinite(out[1:]).all()


def test_float64_is_libm():
    x = np.linspace(-5, 5, 101)
    out = np.empty_like(x)
    for which, ref in REFERENCES.items():
        _apply(x, out, which)
        np.testing.assert_allclose(out, ref(x), rtol=1e-14, atol=1e-300)
