"""The fused epoch on the GPU: a whole epoch of online or small-batch SGD in one launch
of one thread block.

Every batch -- forward, costs and output deltas, hidden deltas, gradients and update --
runs in phases separated by ``syncthreads``, with a piece of the batch (its activations
and deltas) in shared memory, and the parameters too when they fit (loaded once,
written back at the end; else they stay in global memory, where L2 holds them). The
per-launch overhead that dominates per-layer launches at batch size 1 is then paid once
per epoch. ``fused_plan`` decides whether an epoch runs here and lays out shared memory.
"""
import math
from typing import NamedTuple

import numpy as np

from fastbp.kernels import cuda_config as config
from fastbp.kernels import scalar
from fastbp.kernels.codes import SIGMOID, SOFTMAX
from fastbp.kernels.cuda_config import cdiv, cuda, jit

device = jit(device=True)
_FLOAT64 = np.dtype(np.float64)  # an instance: the simulator's shared arrays need itemsize

# Columns of the fused epoch's layout table ``lay`` (L + 1, 8), row m for layer m:
_D, _ACT, _GW, _SW, _LD, _SA, _LDA, _SD = range(8)
#   D[m], activation code, offset of W[m] in params, offset of W[m] in shared memory, its
#   padded row stride (odd), offset of block m of A in shared memory, that block's padded
#   row stride (odd), offset of block m of the deltas in shared memory.


class FusedPlan(NamedTuple):
    """How train_epoch runs an epoch as one launch of one block (see fused_plan)."""
    lay: object       # (L + 1, 8) int64 device array, columns _D.._SD
    rows: int         # samples per piece of a batch
    in_shared: bool   # parameters (and velocity, gradient buffer) in shared memory
    grad_at: int      # offset of the gradient buffer (shared memory, or the grad array); -1: none
    vel_at: int       # offset of the velocity (shared memory, or the velocity array); -1: none
    costs_at: int     # offset in float64 elements of the per-sample costs, then the stop flag
    nbytes: int       # dynamic shared memory


def plan_for(net, batch_size, dtype, momentum):
    """The FusedPlan of train_epoch for a network (``cuda._Net``) and batch size, or None
    when a piece of one sample does not fit; made once and kept in ``net.plans``.

    Shared memory (FUSED_SHARED_BYTES) always holds one piece of a batch: per sample its
    activations and deltas, rows padded to odd strides, and its float64 cost; a piece is
    the whole batch or as many samples as fit, at most FUSED_MAX_ROWS. When they fit
    beside it, the parameters live there too (each W[m] row padded to an odd stride),
    with the velocity when ``momentum`` and a gradient buffer when a batch takes several
    pieces; else they stay in global memory (the params, velocity and grad arrays).
    """
    item = np.dtype(dtype).itemsize
    key = (batch_size, bool(momentum), item, config.FUSED_SHARED_BYTES, config.FUSED_MAX_ROWS,
           config.FUSED_PARAMS_IN_SHARED)
    if key not in net.plans:
        net.plans[key] = _make_plan(net, batch_size, bool(momentum), item)
    return net.plans[key]


def _make_plan(net, batch_size, momentum, item):
    D, L = net.D, net.L
    ld = [0] + [D[m - 1] | 1 for m in range(1, L + 1)]
    p_sh = sum(D[m] * (ld[m] + 1) for m in range(1, L + 1))
    lda = [d | 1 for d in D]
    per_row = sum(lda) + sum(lda[1:])  # activations of every layer, deltas of layers 1..L

    def rows_beside(elements):  # samples per piece beside this many parameter elements
        free = config.FUSED_SHARED_BYTES - 16 - elements * item  # 16: stop flag and alignment
        return min(batch_size, config.FUSED_MAX_ROWS, free // (per_row * item + 8))

    vel = p_sh if momentum else 0
    rows = rows_beside(p_sh + vel)
    in_shared, pieces = True, rows < batch_size
    if pieces:
        rows = rows_beside(2 * p_sh + vel)
    if rows < 1 or not config.FUSED_PARAMS_IN_SHARED:
        in_shared, vel = False, 0
        rows = rows_beside(0)
        pieces = rows < batch_size
        if rows < 1:
            return None
    lay = np.zeros((L + 1, 8), np.int64)
    params_end = p_sh * (1 + pieces) + vel if in_shared else 0
    sw, sa, sd = 0, params_end, params_end + rows * sum(lda)
    for m in range(L + 1):
        lay[m, _D], lay[m, _SA], lay[m, _LDA] = D[m], sa, lda[m]
        sa += rows * lda[m]
        if m >= 1:
            lay[m, _ACT], lay[m, _GW], lay[m, _SD] = net.acts[m - 1], net.w[m], sd
            lay[m, _SW], lay[m, _LD] = (sw, ld[m]) if in_shared else (net.w[m], D[m - 1])
            sw += D[m] * (ld[m] + 1)
            sd += rows * lda[m]
    if in_shared:
        grad_at = p_sh if pieces else -1
        vel_at = p_sh * (1 + pieces) if momentum else -1
    else:
        grad_at, vel_at = (0 if pieces else -1), (0 if momentum else -1)
    costs_at = cdiv(item * sd, 8)
    return FusedPlan(cuda.to_device(lay), rows, in_shared, grad_at, vel_at, costs_at,
                     8 * (costs_at + rows + 1))


@device
def _fused_copy(sh, params, lay, base, t, T, load):
    """Parameters (or velocity) between params (P,) and shared memory at sh[base:] with the
    padded layout of lay: load (global -> shared) or store. Index j on threadIdx.x."""
    for m in range(1, lay.shape[0]):
        n_out, n_in = lay[m, _D], lay[m - 1, _D]
        g, s, ld = lay[m, _GW], base + lay[m, _SW], lay[m, _LD]
        for k in range(t, n_out * (n_in + 1), T):
            if k < n_out * n_in:
                i = k // n_in
                p = s + i * ld + k - i * n_in
            else:
                p = s + n_out * ld + k - n_out * n_in  # bias
            if load:
                sh[p] = params[g + k]
            else:
                params[g + k] = sh[p]


@device
def _fused_forward(pb, ab, lay, m, n, t, T, one):
    """z[m]_si = sum_j W_ij * a_sj + b_i, a = act(z) (not softmax), one thread per (s, i),
    i on threadIdx.x. W[m] in pb (rows of stride lay[m, _LD]: odd in shared memory, so
    the threads of a warp read distinct banks), activations in ab."""
    n_out, n_in = lay[m, _D], lay[m - 1, _D]
    w, ld, code = lay[m, _SW], lay[m, _LD], lay[m, _ACT]
    a_in, ld_in, a_out, ld_out = lay[m - 1, _SA], lay[m - 1, _LDA], lay[m, _SA], lay[m, _LDA]
    for e in range(t, n * n_out, T):
        s = e // n_out
        i = e - s * n_out
        acc = pb[w + n_out * ld + i]
        row, x = w + i * ld, a_in + s * ld_in
        for j in range(n_in):
            acc += pb[row + j] * ab[x + j]
        ab[a_out + s * ld_out + i] = acc if code == SOFTMAX else scalar.activate(code, acc, one)


@device
def _fused_delta(pb, ab, lay, m, n, t, T, one):
    """delta[m]_sj = act'(a_sj) * sum_i W[m+1]_ij * delta[m+1]_si, one thread per (s, j),
    j on threadIdx.x."""
    n_here, n_next = lay[m, _D], lay[m + 1, _D]
    w, ld, code = lay[m + 1, _SW], lay[m + 1, _LD], lay[m, _ACT]
    d, a, lda = lay[m, _SD], lay[m, _SA], lay[m, _LDA]
    d_next, ld_next = lay[m + 1, _SD], lay[m + 1, _LDA]
    for e in range(t, n * n_here, T):
        s = e // n_here
        j = e - s * n_here
        acc = one - one
        for i in range(n_next):
            acc += pb[w + i * ld + j] * ab[d_next + s * ld_next + i]
        ab[d + s * lda + j] = acc * scalar.derivative(code, ab[a + s * lda + j], one)


@device
def _fused_grad(ab, lay, m, n, i, j, one):
    """sum_s delta[m]_si * a[m-1]_sj over the n samples of a piece (j = D[m-1]: the bias)."""
    n_in = lay[m - 1, _D]
    d, lda = lay[m, _SD], lay[m, _LDA]
    a, ld_in = lay[m - 1, _SA], lay[m - 1, _LDA]
    acc = one - one
    for s in range(n):
        x = ab[a + s * ld_in + j] if j < n_in else one
        acc += ab[d + s * lda + i] * x
    return acc


@device
def _fused_grad_update(pb, gb, vb, ab, lay, n, first, last, scale, grad_at, vel_at, lr,
                    momentum, nesterov, l2, use_bias, t, T, one):
    """Per parameter (one thread each, j on threadIdx.x): the piece's gradient sum plus the
    earlier pieces' from the gradient buffer gb[grad_at:]; on the batch's last piece the
    update of pb (velocity in vb[vel_at:]), else the sum goes into the buffer."""
    for m in range(1, lay.shape[0]):
        n_out, n_in = lay[m, _D], lay[m - 1, _D]
        w, ld = lay[m, _SW], lay[m, _LD]
        for k in range(t, n_out * (n_in + 1), T):
            i = k // (n_in + 1)
            j = k - i * (n_in + 1)
            p = w + i * ld + j if j < n_in else w + n_out * ld + i
            g = _fused_grad(ab, lay, m, n, i, j, one)
            if not first:
                g += gb[grad_at + p]
            if not last:
                gb[grad_at + p] = g
            elif j < n_in or use_bias:
                g = scalar.penalized_gradient(g, pb[p], scale, l2) if j < n_in else scale * g
                v = vb[vel_at + p] if vel_at >= 0 else one - one
                pb[p], v = scalar.sgd_step(pb[p], g, v, lr, momentum, nesterov, one)
                if vel_at >= 0:
                    vb[vel_at + p] = v


@jit(cache=True)
def fused_epoch(params, velocity, grad, X, Y, SW, order, scales, batch_size, lay, rows,
                in_shared, grad_at, vel_at, costs_at, loss, lr, momentum, nesterov, l2, use_bias,
                stats):
    """train_epoch in one launch of one block: every batch -- forward, costs and output
    deltas, hidden deltas, gradients and update -- in phases separated by syncthreads, a
    batch in pieces of at most ``rows`` samples whose activations and deltas stay in
    shared memory. Parameters (velocity, gradient buffer) in shared memory when in_shared,
    loaded once and stored at the end; else in params, velocity and grad. Layout from
    fused_plan; SW, stats as train_epoch's; scales[k] the update scale of batch k (1 / its
    summed weight; 0: no update)."""
    sh = cuda.shared.array(0, params.dtype)
    sh64 = cuda.shared.array(0, _FLOAT64)  # the same memory: costs and stop flag at costs_at
    costs = sh64[costs_at:costs_at + rows]
    stop = sh64[costs_at + rows:costs_at + rows + 1]
    one = params.dtype.type(1)
    t, T = cuda.threadIdx.x, cuda.blockDim.x
    L = lay.shape[0] - 1
    n_in, n_out, code = lay[0, _D], lay[L, _D], lay[L, _ACT]
    binary = code == SIGMOID
    if in_shared:
        _fused_copy(sh, params, lay, 0, t, T, True)
        if vel_at >= 0:
            _fused_copy(sh, velocity, lay, vel_at, t, T, True)
        pb, gb, vb = sh, sh, sh
    else:
        pb, gb, vb = params, grad, velocity
    if t == 0:
        stop[0] = 0.0
    batch_cost, batch_weight = 0.0, 0.0  # thread 0's
    weighted = SW.shape[0] > 0
    n_total = order.shape[0]
    for start in range(0, n_total, batch_size):
        end = min(start + batch_size, n_total)
        scale = scales[start // batch_size]
        for lo in range(start, end, rows):
            n = min(rows, end - lo)
            cuda.syncthreads()
            a0, ld0 = lay[0, _SA], lay[0, _LDA]
            for e in range(t, n * n_in, T):
                s = e // n_in
                sh[a0 + s * ld0 + e - s * n_in] = X[order[lo + s], e - s * n_in]
            cuda.syncthreads()
            for m in range(1, L + 1):
                _fused_forward(pb, sh, lay, m, n, t, T, one)
                cuda.syncthreads()
            a, d, ld = lay[L, _SA], lay[L, _SD], lay[L, _LDA]
            for s in range(t, n, T):
                if code == SOFTMAX:
                    scalar.softmax_row(sh, a + s * ld, n_out, one)
                r = order[lo + s]
                w = SW[r] if weighted else one
                costs[s] = scalar.row_cost(sh, a + s * ld, Y, r, n_out, binary, loss) * w
                scalar.output_delta_row(sh, d + s * ld, sh, a + s * ld, Y, r, n_out, code, loss, one)
                if weighted:
                    for i in range(n_out):
                        sh[d + s * ld + i] *= w
            cuda.syncthreads()
            if t == 0:
                for s in range(n):
                    batch_cost += costs[s]
                    batch_weight += SW[order[lo + s]] if weighted else 1.0
                if lo + n == end:
                    if math.isfinite(batch_cost):
                        stats[0] += batch_cost
                        stats[1] += end - start
                        stats[3] += batch_weight
                    else:
                        stats[2] = 1.0
                        stop[0] = 1.0
                    batch_cost, batch_weight = 0.0, 0.0
            for m in range(L - 1, 0, -1):
                _fused_delta(pb, sh, lay, m, n, t, T, one)
                cuda.syncthreads()
            cuda.syncthreads()
            if stop[0] != 0:
                break
            if scale != 0:
                _fused_grad_update(pb, gb, vb, sh, lay, n, lo == start, lo + n == end, scale,
                                   grad_at, vel_at, lr, momentum, nesterov, l2, use_bias, t, T,
                                   one)
        if stop[0] != 0:
            break
    cuda.syncthreads()
    if in_shared:
        _fused_copy(sh, params, lay, 0, t, T, False)
        if vel_at >= 0:
            _fused_copy(sh, velocity, lay, vel_at, t, T, False)
