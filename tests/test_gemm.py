"""loop_gemm.gemm, the packed micro-kernel behind large-batch layers, against NumPy: every
transpose combination, edge tiles in every dimension, panels deeper than KC and taller
than MC, buffers at an offset, with and without accumulation."""
import itertools

import numpy as np
import pytest

from fastbp.kernels import loop_gemm


def _stored(rng, rows, cols, trans, dtype, offset):
    """op(X) (rows, cols) as gemm reads it: the flat buffer (offset padding first) and op(X)."""
    stored = rng.normal(size=(cols, rows) if trans else (rows, cols)).astype(dtype)
    flat = np.concatenate([rng.normal(size=offset).astype(dtype), stored.ravel()])
    return flat, (stored.T if trans else stored)


SHAPES = [(1, 1, 1), (9, 17, 3), (loop_gemm.MR, 2 * loop_gemm.nr(4), 16),
          (37, 45, loop_gemm.KC + 44), (loop_gemm.MC + 3, 33, 2 * loop_gemm.KC + 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M, N, K", SHAPES)
def test_gemm_equals_numpy(M, N, K, dtype):
    rng = np.random.default_rng(M * 1000 + N + K)
    widest = max(M, N, K, 64)
    work = loop_gemm.work_for(np.array([widest, widest], np.int64), np.zeros(1, dtype), 4096)
    assert work.size > 0
    for a_trans, b_trans, accumulate in itertools.product([False, True], repeat=3):
        A, opA = _stored(rng, M, K, a_trans, dtype, 3)
        B, opB = _stored(rng, K, N, b_trans, dtype, 5)
        C0 = rng.normal(size=M * N).astype(dtype)
        C = np.concatenate([np.full(7, 99, dtype), C0])
        loop_gemm.gemm(C, 7, A, 3, a_trans, B, 5, b_trans, M, N, K, accumulate, work)
        want = opA.astype(np.float64) @ opB.astype(np.float64)
        if accumulate:
            want += C0.reshape(M, N)
        tol = 1e-4 * np.sqrt(K) if dtype == np.float32 else 1e-12 * np.sqrt(K)
        np.testing.assert_allclose(C[7:].reshape(M, N), want, rtol=tol, atol=tol,
                                   err_msg=f"a_trans={a_trans} b_trans={b_trans} "
                                           f"accumulate={accumulate}")
        assert np.all(C[:7] == 99), "gemm wrote before its output"


def test_work_is_allocated_only_where_gemm_pays():
    """None makes the passes compile without gemm: small networks never pay its compile."""
    like = np.zeros(1, np.float32)
    assert loop_gemm.work_for(np.array([64, 32, 10]), like, 1) is None
    assert loop_gemm.work_for(np.array([784, 512, 10]), like, 256).size > 0


@pytest.mark.parametrize("M, N, K", SHAPES[1:])
def test_gemm_threads_sums_exactly_as_gemm(M, N, K):
    """The threaded variant splits rows only: each element's sum is gemm's, bit for bit."""
    rng = np.random.default_rng(1)
    widest = max(M, N, K, 64)
    work = loop_gemm.work_for(np.array([widest, widest], np.int64), np.zeros(1, np.float32), 4096)
    A = rng.normal(size=M * K).astype(np.float32)
    B = rng.normal(size=K * N).astype(np.float32)
    serial, threaded = np.zeros(M * N, np.float32), np.zeros(M * N, np.float32)
    loop_gemm.gemm(serial, 0, A, 0, False, B, 0, True, M, N, K, False, work)
    loop_gemm.gemm_threads(threaded, 0, A, 0, False, B, 0, True, M, N, K, False, work,
                           np.full(1, 2, np.int64))
    np.testing.assert_array_equal(threaded, serial)


@pytest.mark.parametrize("threads", [1, 2])
def test_training_through_gemm_matches_the_vectorized_reference(threads):
    """Batches large enough for gemm in every product (forward, delta, gradient), serial
    and threaded: an epoch equals the NumPy formulation's within float32 rounding."""
    import fastbp
    sizes = [96, 64, 48, 10]
    assert loop_gemm.work_for(np.array(sizes), np.zeros(1, np.float32), 64) is not None
    rng = np.random.default_rng(5)
    X = rng.random((192, 96)).astype(np.float32)
    y = rng.integers(0, 10, 192)
    params = {}
    for backend in ("loop", "vectorized"):
        net = fastbp.Network(sizes, activations=["tanh", "sigmoid", "softmax"],
                             loss="cross_entropy", seed=3)
        trainer = fastbp.Trainer(net, schedule="minibatch", batch_size=64, learning_rate=0.1,
                                 momentum=0.9, seed=3, backend=backend, threads=threads)
        trainer.fit(X, y, epochs=2)
        params[backend] = net.params
    np.testing.assert_allclose(params["loop"], params["vectorized"], rtol=2e-4, atol=2e-5)
