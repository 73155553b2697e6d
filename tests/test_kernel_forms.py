"""Each register-blocked CPU kernel equals its plain loop form (the equation of DESIGN.md
section 1 as nested loops), on shapes that leave remainders in every tile and cache block."""
import numpy as np
import pytest

from fastbp.kernels import codes, loop_layers, loop_online, scalar

from ._util import assert_close

# n_out % 4 == 3 and n % 4 == 1 leave remainder rows and samples; 37 > SAMPLE_BLOCK spans
# two cache blocks.
N_SAMPLES, N_IN, N_OUT = 37, 6, 7
assert N_SAMPLES > loop_layers.SAMPLE_BLOCK


def _arrays(dtype, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(N_OUT, N_IN)).astype(dtype)
    b = rng.normal(size=N_OUT).astype(dtype)
    a_in = rng.uniform(0.05, 0.95, (N_SAMPLES, N_IN)).astype(dtype)
    return W, b, a_in


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softmax"])
@pytest.mark.parametrize("lo,hi", [(0, N_SAMPLES), (3, 30)])
def test_forward_layer_blocked_equals_plain(act, lo, hi, dtype):
    W, b, a_in = _arrays(dtype)
    code, one = codes.ACTIVATIONS[act], dtype.type(1)
    z, z_plain = np.zeros((N_SAMPLES, N_OUT), dtype), np.zeros((N_SAMPLES, N_OUT), dtype)
    loop_layers._forward_layer(z, W, b, a_in, code, one, lo, hi)
    loop_layers._forward_layer_plain(z_plain, W, b, a_in, code, one, lo, hi)
    assert_close(z, z_plain, dtype, f"_forward_layer vs plain, {act}, samples {lo}..{hi}")
    assert not z[:lo].any() and not z[hi:].any(), "wrote outside its samples"


@pytest.mark.parametrize("lo,hi", [(0, N_SAMPLES), (5, 34)])
def test_delta_layer_blocked_equals_plain(lo, hi, dtype):
    W_next, _, a = _arrays(dtype, seed=1)  # W_next (N_OUT, N_IN): this layer has N_IN units
    rng = np.random.default_rng(2)
    d_next = rng.normal(size=(N_SAMPLES, N_OUT)).astype(dtype)
    code, one = codes.TANH, dtype.type(1)
    d, d_plain = np.zeros((N_SAMPLES, N_IN), dtype), np.zeros((N_SAMPLES, N_IN), dtype)
    loop_layers._delta_layer(d, W_next, d_next, a, code, one, lo, hi)
    loop_layers._delta_layer_plain(d_plain, W_next, d_next, a, code, one, lo, hi)
    assert_close(d, d_plain, dtype, f"_delta_layer vs plain, samples {lo}..{hi}")


@pytest.mark.parametrize("lo,hi", [(0, N_OUT), (1, 6)])
def test_grad_layer_blocked_equals_plain(lo, hi, dtype):
    _, _, a_in = _arrays(dtype, seed=3)
    delta = np.random.default_rng(4).normal(size=(N_SAMPLES, N_OUT)).astype(dtype)
    start = np.random.default_rng(5).normal(size=(N_OUT, N_IN + 1)).astype(dtype)
    g, g_plain = start.copy(), start.copy()  # gW | gb: both kernels add to what is there
    loop_layers._grad_layer(g[:, :N_IN], g[:, N_IN], delta, a_in, lo, hi)
    loop_layers._grad_layer_plain(g_plain[:, :N_IN], g_plain[:, N_IN], delta, a_in, lo, hi)
    assert_close(g, g_plain, dtype, f"_grad_layer vs plain, rows {lo}..{hi}")
    untouched = np.r_[0:lo, hi:N_OUT]
    np.testing.assert_array_equal(g[untouched], start[untouched], "wrote outside its rows")


@pytest.mark.parametrize("act", ["relu", "softmax"])
def test_forward_sample_equals_plain(act, dtype):
    """The online path's flat-buffer forward pass is the plain equation for one sample."""
    W, b, a_in = _arrays(dtype, seed=6)
    code, one = codes.ACTIVATIONS[act], dtype.type(1)
    params = np.concatenate([np.zeros(3, dtype), W.ravel(), b])  # W[m] at offset 3
    A = np.concatenate([np.zeros(2, dtype), a_in[0], np.zeros(N_OUT, dtype)])  # a[m-1] at 2
    u = np.uint64
    loop_online._forward_sample(params, u(3), A, u(2), A, u(2 + N_IN), u(N_IN), u(N_OUT))
    scalar.activate_row(A, 2 + N_IN, N_OUT, code, one)
    z_plain = np.zeros((1, N_OUT), dtype)
    loop_layers._forward_layer_plain(z_plain, W, b, a_in[:1], code, one, 0, 1)
    assert_close(A[2 + N_IN:], z_plain[0], dtype, f"_forward_sample vs plain, {act}")
