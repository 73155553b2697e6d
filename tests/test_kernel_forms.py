"""Each register-blocked CPU kernel equals its plain loop form (the equation of DESIGN.md
section 1 as nested loops) bit for bit, on shapes that leave remainders in every tile and
cache block. (tests/test_harness.py sweeps shapes; these are the kernels one by one.)"""
import numpy as np
import pytest

from fastbp.kernels import codes, loop_gemm, loop_layers, loop_tiles

# N_OUT is no multiple of a tile's rows or lanes, N_SAMPLES spans two cache blocks of
# samples and ends in a partial tile.
N_SAMPLES, N_IN, N_OUT = loop_layers.SAMPLE_BLOCK + loop_tiles.R + 1, 6, loop_tiles.R + 3
assert N_SAMPLES % loop_tiles.R and N_OUT % loop_tiles.R and N_OUT % loop_tiles.lanes(8)


def _arrays(dtype, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(N_OUT, N_IN)).astype(dtype)
    b = rng.normal(size=N_OUT).astype(dtype)
    a_in = rng.uniform(0.05, 0.95, (N_SAMPLES, N_IN)).astype(dtype)
    return W, b, a_in


def test_transpose_on_every_shape_around_a_block(dtype):
    """W^T in whole V x V register blocks plus element-by-element edges: every shape from
    1 to 2 V + 1 each way (no block, one, two, with and without edges), at offsets, and
    nothing written outside WT's own range."""
    V = loop_gemm.VECTOR_BYTES // dtype.itemsize
    rng = np.random.default_rng(0)
    for n_out in range(1, 2 * V + 2):
        for n_in in range(1, 2 * V + 2):
            W = rng.normal(size=(n_out, n_in)).astype(dtype)
            params = np.concatenate([np.ones(3, dtype), W.ravel(), np.ones(2, dtype)])
            WT = np.full(5 + W.size + 4, np.nan, dtype)
            loop_tiles.transpose(WT, 5, params, 3, n_out, n_in)
            np.testing.assert_array_equal(WT[5:5 + W.size].reshape(n_in, n_out), W.T,
                                          f"{n_out} x {n_in}")
            assert np.isnan(WT[:5]).all() and np.isnan(WT[5 + W.size:]).all()


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softmax"])
@pytest.mark.parametrize("lo,hi", [(0, N_SAMPLES), (3, N_SAMPLES - 7)])
def test_forward_layer_blocked_equals_plain(act, lo, hi, dtype):
    W, b, a_in = _arrays(dtype)
    code, one = codes.ACTIVATIONS[act], dtype.type(1)
    params = np.concatenate([np.zeros(5, dtype), W.ravel(), b])  # W at 5: offsets are honoured
    WT = np.zeros(2 + W.size, dtype)
    loop_tiles.transpose(WT, 2, params, 5, N_OUT, N_IN)
    np.testing.assert_array_equal(WT[2:].reshape(N_IN, N_OUT), W.T)
    results = []
    for blocked in (True, False):
        A = np.concatenate([np.zeros(3, dtype), a_in.ravel(), np.zeros(N_SAMPLES * N_OUT, dtype)])
        if blocked:
            loop_layers._forward_layer(A, 3 + a_in.size, params, 5, WT, 2, 3, N_IN, N_OUT, code,
                                       one, lo, hi)
        else:
            loop_layers._forward_layer_plain(A, 3 + a_in.size, params, 5, 3, N_IN, N_OUT, code,
                                             one, lo, hi)
        results.append(A[3 + a_in.size:].reshape(N_SAMPLES, N_OUT))
    z, z_plain = results
    np.testing.assert_array_equal(z, z_plain, f"_forward_layer vs plain, {act}, {lo}..{hi}")
    assert not z[:lo].any() and not z[hi:].any(), "wrote outside its samples"


@pytest.mark.parametrize("lo,hi", [(0, N_SAMPLES), (5, N_SAMPLES - 3)])
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
    np.testing.assert_array_equal(d, d_plain, f"_delta_layer vs plain, samples {lo}..{hi}")
    assert not d[:lo].any() and not d[hi:].any(), "wrote outside its samples"


@pytest.mark.parametrize("lo,hi", [(0, N_OUT), (1, N_OUT - 1)])
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
    np.testing.assert_array_equal(g, g_plain, f"_grad_layer vs plain, rows {lo}..{hi}")
    untouched = np.r_[0:lo, hi:N_OUT]
    np.testing.assert_array_equal(g[untouched], start[untouched], "wrote outside its rows")
