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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_infinite_pre_activations_saturate(dtype):
    """A pre-activation that overflowed (float32 sums past 3.4e38) saturates as libm's
    functions do: sigmoid 1 or 0, tanh 1 or -1; never NaN, which a network would pass on
    to its outputs and predict() would read as class 0."""
    x = np.array([np.inf, -np.inf], dtype)
    out = np.empty_like(x)
    _apply(x, out, 1)
    np.testing.assert_allclose(out, [1, 0], rtol=0, atol=1e-37)  # exp32's clamp: 4e-39
    _apply(x, out, 2)
    np.testing.assert_allclose(out, [1, -1], rtol=3e-7)  # tanh32 at its clamp: 1 - 2.4e-7


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", ["loop", "vectorized"])
def test_a_network_whose_sums_overflow_gives_the_saturated_outputs(backend, dtype):
    """Finite inputs and weights whose sums overflow: tanh/sigmoid hidden units saturate,
    and a softmax over infinite pre-activations gives its limit (the largest units share
    the probability), so predict() names the class float64 arithmetic would."""
    import fastbp
    big = np.finfo(dtype).max
    net = fastbp.Network([2, 2, 3], activations=["tanh", "softmax"], loss="cross_entropy",
                         dtype=dtype, seed=0)
    net.weights[0][...] = [[big, big], [-big, -big]]   # overflows to +inf and -inf
    net.weights[1][...] = [[0, 0], [big, -big], [1, 1]]  # unit 1: +inf for sample 0
    X = np.array([[4.0, 4.0], [-4.0, -4.0]])
    with np.errstate(over="ignore"):  # NumPy's matmul says so
        out = net.forward(X, backend=backend)
    assert np.isfinite(out).all(), out
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(net.predict(X, backend=backend), [1, 0])
    np.testing.assert_allclose(out[0], [0, 1, 0])
