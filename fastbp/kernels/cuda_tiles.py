"""The tiled product under the per-layer kernels (``cuda_layers``), on the device.

``block_product`` sums acc[a, b] += sum_k X(row a, k) * M(row b, k) for one thread's
R x R register block of a (TILE R) x (TILE R) block tile, where X and M are read from the
flat buffers through (offset, row stride, k stride): the forward, delta and gradient
products of a layer are the same loop fed different strides. Operands pass through shared
memory in slices of TILE along k, loaded with whichever index is contiguous on
threadIdx.x (coalesced) and stored transposed into rows of odd stride (TILE R + 1: no bank
conflicts). Indices are unsigned 64-bit and the loops step offsets, with no division.
"""
import numpy as np

from fastbp.kernels import cuda_config as config
from fastbp.kernels.cuda_config import cuda, jit

_u = np.uint64
R = config.REGISTER_BLOCK  # outputs per thread along each side of its block: compile-time
_R, _0, _1 = _u(R), _u(0), _u(1)
device = jit(device=True)


@device
def _load_tile(tiles, at, X, off, s_row, s_k, row0, n_rows, bias, k0, k_hi, t, tx, ty, one):
    """tiles[at + k (t R + 1) + r] = X(row0 + r, k0 + k) for r < t R, k < t, where
    X(row, k) = X[off + row s_row + k s_k]; zero for row >= n_rows or k >= k_hi, except one
    in row n_rows when ``bias`` (a column of ones: the bias of the gradient)."""
    ld = t * _R + _1
    zero = one - one
    for a in range(_R):
        if s_k == _1:  # k contiguous in memory: k on threadIdx.x
            k, r = tx, ty + a * t
        else:          # rows contiguous: the row on threadIdx.x
            k, r = ty, tx + a * t
        row, kk = row0 + r, k0 + k
        v = zero
        if kk < k_hi:
            if row < n_rows:
                v = X[off + row * s_row + kk * s_k]
            elif bias and row == n_rows:
                v = one
        tiles[at + k * ld + r] = v


@device
def block_product(acc, tiles, X, x_off, x_row, x_k, x0, x_n, M, m_off, m_row, m_k, m0, m_n,
                   m_bias, k_lo, k_hi, one):
    """acc[a, b] += sum_{k_lo <= k < k_hi} X(x0 + ty + a t, k) * M(m0 + tx + b t, k), with
    X(row, k) = X[x_off + row x_row + k x_k] (x_n rows), M(row, k) likewise (m_n rows; a
    row m_n of ones when m_bias). Every thread of the block must call it (syncthreads)."""
    t, tx, ty = _u(cuda.blockDim.x), _u(cuda.threadIdx.x), _u(cuda.threadIdx.y)
    ld = t * _R + _1
    at = t * ld  # the M slice follows the X slice
    xv = cuda.local.array(R, X.dtype)
    mv = cuda.local.array(R, X.dtype)
    k0 = k_lo
    while k0 < k_hi:  # a counted loop without range()'s division
        _load_tile(tiles, _0, X, x_off, x_row, x_k, x0, x_n, False, k0, k_hi, t, tx, ty, one)
        _load_tile(tiles, at, M, m_off, m_row, m_k, m0, m_n, m_bias, k0, k_hi, t, tx, ty, one)
        cuda.syncthreads()
        px, pm, p_end = ty, at + tx, ty + t * ld
        while px < p_end:  # k = 0..t-1: offsets stepped by a row, no range() bookkeeping
            for a in range(_R):
                xv[a] = tiles[px + a * t]  # one address per row of threads: a broadcast
                mv[a] = tiles[pm + a * t]  # consecutive addresses along threadIdx.x
            for a in range(_R):
                for b in range(_R):
                    acc[a, b] += xv[a] * mv[b]
            px += ld
            pm += ld
        cuda.syncthreads()
        k0 += t
