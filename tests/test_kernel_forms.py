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
    params = np.concatenate([np.zeros(5, dtype), W.ravel(), b])  # W at 5: offsets are honoured
    results = []
    for kernel in (loop_layers._forward_layer, loop_layers._forward_layer_plain):
        A = np.concatenate([np.zeros(3, dtype), a_in.ravel(), np.zeros(N_SAMPLES * N_OUT, dtype)])
        kernel(A, 3 + a_in.size, params, 5, 3, N_IN, N_OUT, code, one, lo, hi)
        results.append(A[3 + a_in.size:].reshape(N_SAMPLES, N_OUT))
    z, z_plain = results
    assert_close(z, z_plain, dtype, f"_forward_layer vs plain, {act}, samples {lo}..{hi}")
    assert not z[:lo].any() and not z[hi:].any(), "wrote outside its samples"


@pytest.mark.parametrize("lo,hi", [(0, N_SAMPLES), (5, 34)])
def test_delta_layer_blocked_equals_plain(lo, hi, dtype):
    W_next, _, a = _arrays(dtype, seed=1)  # W_next (N_OUT, N_IN): this layer has N_IN units
    rng = np.random.default_rng(2)
    d_next = rng.normal(size=(N_SAMPLES, N_OUT)).astype(dtype)
    code, one = codes.TANH, dtype.type(1)
    params = np.concatenate([np.zeros(2, dtype), W_next.ravel()])
    A = np.concatenate([np.zeros(4, dtype), a.ravel()])
    results = []
    for kernel in (loop_layers._delta_layer, loop_layers._delta_layer_plain):
        Dl = np.concatenate([np.zeros(N_SAMPLES * N_IN + 1, dtype), d_next.ravel()])
        kernel(Dl, 1, A, 4, params, 2, 1 + N_SAMPLES * N_IN, N_IN, N_OUT, code, one, lo, hi)
        results.append(Dl[1:1 + N_SAMPLES * N_IN].reshape(N_SAMPLES, N_IN))
    d, d_plain = results
    assert_close(d, d_plain, dtype, f"_delta_layer vs plain, samples {lo}..{hi}")
    assert not d[:lo].any() and not d[hi:].any(), "wrote outside its samples"


@pytest.mark.parametrize("lo,hi", [(0, N_OUT), (1, 6)])
def test_grad_layer_blocked_equals_plain(lo, hi, dtype):
    _, _, a_in = _arrays(dtype, seed=3)
    delta = np.random.default_rng(4).normal(size=(N_SAMPLES, N_OUT)).astype(dtype)
    start = np.random.default_rng(5).normal(size=(N_OUT, N_IN + 1)).astype(dtype)
    # gW then gb, as in params; both kernels add to what is there.
    flat = np.concatenate([np.zeros(2, dtype), start[:, :N_IN].ravel(), start[:, N_IN]])
    Dl = np.concatenate([np.zeros(1, dtype), delta.ravel()])
    A = np.concatenate([np.zeros(3, dtype), a_in.ravel()])
    results = []
    for kernel in (loop_layers._grad_layer, loop_layers._grad_layer_plain):
        grad = flat.copy()
        kernel(grad, 2, Dl, 1, A, 3, N_SAMPLES, N_IN, N_OUT, lo, hi)
        results.append(np.column_stack([grad[2:2 + N_OUT * N_IN].reshape(N_OUT, N_IN),
                                        grad[2 + N_OUT * N_IN:]]))
    g, g_plain = results
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
    A_plain = np.concatenate([a_in[0], np.zeros(N_OUT, dtype)])
    loop_layers._forward_layer_plain(A_plain, N_IN, params, 3, 0, N_IN, N_OUT, code, one, 0, 1)
    assert_close(A[2 + N_IN:], A_plain[N_IN:], dtype, f"_forward_sample vs plain, {act}")
