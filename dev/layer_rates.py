"""GFLOP/s of one layer's forward product through each CPU path, 1 thread, float32: the
register tiles (loop_tiles.forward_rows, W^T transposed first as a fit does) against the
packed products (loop_gemm.gemm), and NumPy's matrix product beside them. The crossing
point is loop_gemm.MIN_WORK.

    python dev/layer_rates.py [rows n_out n_in ...]
"""
import sys
import time

import numba
import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from fastbp._config import JIT_NO_NRT
from fastbp.kernels import loop_gemm as lg
from fastbp.kernels import loop_tiles as lt

numba.set_num_threads(1)
threadpool_limits(1)
shapes = [tuple(map(int, sys.argv[i:i + 3])) for i in range(1, len(sys.argv), 3)] or [
    (256, 32, 64), (256, 64, 64), (256, 128, 128), (256, 128, 784), (256, 512, 512),
    (256, 512, 784), (64, 512, 512)]


@njit(**JIT_NO_NRT)
def tiles(reps, C, A, W, WT, M, N, K):
    for _ in range(reps):
        lt.transpose(WT, 0, W, 0, N, K)
        lt.forward_rows(C, 0, W, N * K, WT, 0, 0, K, N, 0, M)


@njit(**JIT_NO_NRT)
def gemm(reps, C, A, W, work, M, N, K):
    for _ in range(reps):
        lg.gemm(C, 0, A, 0, False, W, 0, True, M, N, K, True, work)


def numpy(reps, C, A, W, M, N, K):
    A2, W2 = A.reshape(M, K), W[:N * K].reshape(N, K)
    for _ in range(reps):
        np.matmul(A2, W2.T, out=C.reshape(M, N))


def rate(f, args, madds):
    f(1, *args)                                   # compile, or load, outside the timing
    reps, best = max(1, int(2e8 // madds)), float("inf")
    for _ in range(5):
        start = time.perf_counter()
        f(reps, *args)
        best = min(best, (time.perf_counter() - start) / reps)
    return 2 * madds / best / 1e9


for M, N, K in shapes:
    rng = np.random.default_rng(0)
    A = rng.normal(size=M * K).astype(np.float32)        # M rows of K inputs
    W = rng.normal(size=N * K + N).astype(np.float32)    # W (N, K), then the N biases
    WT, C = np.empty_like(W), np.zeros(M * N, np.float32)
    work = lg.work_array(max(K, N), W, M)           # even below gemm's threshold
    madds = M * N * K
    print(f"rows {M:4d} out {N:4d} in {K:4d} ({madds / 2**20:5.1f}M multiply-adds): "
          f"tiles {rate(tiles, (C, A, W, WT, M, N, K), madds):5.1f}  "
          f"gemm {rate(gemm, (C, A, W, work, M, N, K), madds):5.1f}  "
          f"numpy {rate(numpy, (C, A, W, M, N, K), madds):5.1f} GFLOP/s", flush=True)
