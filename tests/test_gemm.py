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
    work = loop_gemm.work_array(widest, np.zeros(1, dtype), 4096)
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
    """The threaded variant splits columns only: each element's sum is gemm's, bit for bit."""
    rng = np.random.default_rng(1)
    widest = max(M, N, K, 64)
    work = loop_gemm.work_array(widest, np.zeros(1, np.float32), 4096)
    A = rng.normal(size=M * K).astype(np.float32)
    B = rng.normal(size=K * N).astype(np.float32)
    serial, threaded = np.zeros(M * N, np.float32), np.zeros(M * N, np.float32)
    loop_gemm.gemm(serial, 0, A, 0, False, B, 0, True, M, N, K, False, work)
    loop_gemm.gemm_threads(threaded, 0, A, 0, False, B, 0, True, M, N, K, False, work,
                           np.full(1, 2, np.int64))
    np.testing.assert_array_equal(threaded, serial)


def _interleavings(counts, done=None):
    """Every order of running thread t's steps 0..counts[t]-1, each thread's in its own
    order, as lists of (thread, step)."""
    done = [0] * len(counts) if done is None else done
    if done == list(counts):
        yield []
        return
    for t in range(len(counts)):
        if done[t] < counts[t]:
            after = list(done)
            after[t] += 1
            for tail in _interleavings(counts, after):
                yield [(t, done[t])] + tail


# Shapes where every hazard of sharing one work array shows: K deeper than KC and not a
# multiple of it (a short last panel), M not a multiple of MR or of MC (a short last block
# of rows, several blocks per thread), N not a multiple of NR (a short last strip).
RACE_SHAPES = [(2 * loop_gemm.MC + 5, 3 * loop_gemm.nr(4) + 3, 2 * loop_gemm.KC + 44),
               (4 * loop_gemm.MC + 3, 4 * loop_gemm.nr(4) + 1, loop_gemm.KC + 1),
               (loop_gemm.MR * 3 + 1, 4 * loop_gemm.nr(4) + 1, loop_gemm.KC + 1)]


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("M, N, K", RACE_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_threads_share_nothing_and_need_no_order(M, N, K, threads, dtype):
    """The threads of gemm_threads never wait for each other, so one may pack panel p + 1
    while another still reads panel p: that is safe only if no two threads write the same
    element of work (or of C) and each reads only what it wrote. Checked without relying
    on a lucky schedule: each thread's whole share (thread_panel, panel after panel, the
    body gemm_threads runs) runs alone on a work array of NaN, and the elements it wrote
    must be its own; then the threads' panels run one at a time in every order a race
    could produce, each giving gemm's numbers bit for bit. (With strips placed by the
    panel's depth, or 6-row strips in 128-row blocks, threads overwrote each other.)"""
    rng = np.random.default_rng(M + N + K)
    widest = max(M, N, K, 64)
    like = np.zeros(1, dtype)
    work = loop_gemm.work_array(widest, like, M)
    A = rng.normal(size=M * K).astype(dtype)
    B = rng.normal(size=K * N).astype(dtype)
    serial = np.zeros(M * N, dtype)
    loop_gemm.gemm(serial, 0, A, 0, False, B, 0, True, M, N, K, False, work)
    T = int(loop_gemm.thread_plan(M, N, np.dtype(dtype).itemsize, threads)[0])
    assert T >= 2, "the shape gives several threads columns of their own"
    panels = range(0, K, loop_gemm.KC)

    def run(order):
        C = np.full(M * N, np.nan, dtype)
        for t, p in order:
            loop_gemm.thread_panel(C, 0, A, 0, False, B, 0, True, M, N, K, False, work, t, T,
                                   panels[p])
        return C

    owner = np.full(work.size, -1)
    for t in range(T):
        work[:] = np.nan
        C = run([(t, p) for p in range(len(panels))])
        wrote = ~np.isnan(work)
        shared = wrote & (owner >= 0)
        assert not shared.any(), (f"threads {owner[shared][0]} and {t} both write work "
                                  f"element {np.flatnonzero(shared)[0]} of {work.size}")
        owner[wrote] = t
        mine = ~np.isnan(C)
        np.testing.assert_array_equal(C[mine], serial[mine])
    orders = list(_interleavings([len(panels)] * T))
    for order in orders[:: max(1, len(orders) // 60)]:
        np.testing.assert_array_equal(run(order), serial,
                                      err_msg=f"panels run in the order {order}")
