"""The fused epoch on the GPU: a whole epoch of online or small-batch training (SGD, Adam
or RPROP) in one launch of one thread block.

Every batch -- forward, costs and output deltas, hidden deltas, gradients and update --
runs in phases separated by ``syncthreads``, with a piece of the batch (its activations
and deltas) in shared memory, and the parameters too when they fit (loaded once,
written back at the end; else they stay in global memory, where L2 holds them). The
per-launch overhead that dominates per-layer launches at batch size 1 is then paid once
per epoch. ``fused_plan`` decides whether an epoch runs here and lays out shared memory.

Reads of W are coalesced wherever W lives: the forward pass gives each output row to a
warp, lanes over its inputs, summed by a shuffle reduction (``_lanes_sum``); the delta
pass and the update put the contiguous index j of W_ij on the lanes. There is no 64-bit
division: flat loops over (sample, unit) step their two indices (``divmod32`` once per
loop, in 32 bits). The simulator has no warp shuffles: there ``_lanes_sum`` goes through
shared memory with syncthreads, which is why every loop that calls it is block-uniform.
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
_u, _u32 = np.uint64, np.uint32
_0, _1 = _u(0), _u(1)
WARP = 32
_FULL = _u(0xFFFFFFFF)

# Columns of the fused epoch's layout table ``lay`` (L + 1, 8), row m for layer m:
_D, _ACT, _GW, _SW, _LD, _SA, _LDA, _SD = range(8)
#   D[m], activation code, offset of W[m] in params, offset of W[m] in shared memory, its
#   padded row stride (odd), offset of block m of A in shared memory, that block's padded
#   row stride (odd), offset of block m of the deltas in shared memory.


class FusedPlan(NamedTuple):
    """How train_epoch runs an epoch as one launch of one block (see fused_plan)."""
    lay: object       # (L + 1, 8) int64 device array, columns _D.._SD
    rows: int         # samples per piece of a batch
    in_shared: bool   # parameters (optimizer state, gradient buffer) in shared memory
    grad_at: int      # offset of the gradient buffer (shared memory, or the grad array); -1: none
    s0_at: int        # offset of optimizer state row 0 (shared memory, or state[0]); -1: none
    s1_at: int        # offset of optimizer state row 1 (shared memory, or state[1]); -1: none
    red_at: int       # offset of the lanes' partial sums (the simulator's _lanes_sum)
    costs_at: int     # offset in float64 elements of the per-sample costs, then the stop flag
    nbytes: int       # dynamic shared memory


def plan_for(net, batch_size, dtype, n_state):
    """The FusedPlan of train_epoch for a network (``cuda._Net``) and batch size, or None
    when a piece of one sample does not fit; made once and kept in ``net.plans``.
    ``n_state``: optimizer state rows used (0: plain SGD, 1: SGD momentum, 2: Adam, RPROP).

    Shared memory (FUSED_SHARED_BYTES) always holds one piece of a batch: per sample its
    activations and deltas, rows padded to odd strides, and its float64 cost; a piece is
    the whole batch or as many samples as fit, at most FUSED_MAX_ROWS; and FUSED_THREADS
    partial sums. When they fit beside it, the parameters live there too (each W[m] row
    padded to an odd stride), with the optimizer state rows and a gradient buffer when a
    batch takes several pieces; else they stay in global memory (params, state, grad).
    """
    item = np.dtype(dtype).itemsize
    key = (batch_size, int(n_state), item, config.FUSED_SHARED_BYTES, config.FUSED_MAX_ROWS,
           config.FUSED_PARAMS_IN_SHARED, config.FUSED_THREADS)
    if key not in net.plans:
        net.plans[key] = _make_plan(net, batch_size, int(n_state), item)
    return net.plans[key]


def _make_plan(net, batch_size, n_state, item):
    D, L, T = net.D, net.L, config.FUSED_THREADS
    ld = [0] + [D[m - 1] | 1 for m in range(1, L + 1)]
    p_sh = sum(D[m] * (ld[m] + 1) for m in range(1, L + 1))
    lda = [d | 1 for d in D]
    per_row = sum(lda) + sum(lda[1:])  # activations of every layer, deltas of layers 1..L

    def rows_beside(elements):  # samples per piece beside this many parameter elements
        free = config.FUSED_SHARED_BYTES - 16 - (elements + T) * item  # 16: flag, alignment
        return min(batch_size, config.FUSED_MAX_ROWS, free // (per_row * item + 8))

    state = n_state * p_sh
    rows = rows_beside(p_sh + state)
    in_shared, pieces = True, rows < batch_size
    if pieces:
        rows = rows_beside(2 * p_sh + state)
    if rows < 1 or not config.FUSED_PARAMS_IN_SHARED:
        in_shared, state = False, 0
        rows = rows_beside(0)
        pieces = rows < batch_size
        if rows < 1:
            return None
    lay = np.zeros((L + 1, 8), np.int64)
    params_end = p_sh * (1 + pieces) + state if in_shared else 0
    sw, sa, sd = 0, params_end, params_end + rows * sum(lda)
    for m in range(L + 1):
        lay[m, _D], lay[m, _SA], lay[m, _LDA] = D[m], sa, lda[m]
        sa += rows * lda[m]
        if m >= 1:
            lay[m, _ACT], lay[m, _GW], lay[m, _SD] = net.acts[m - 1], net.w[m], sd
            lay[m, _SW], lay[m, _LD] = (sw, ld[m]) if in_shared else (net.w[m], D[m - 1])
            sw += D[m] * (ld[m] + 1)
            sd += rows * lda[m]
    red_at = sd
    if in_shared:
        grad_at = p_sh if pieces else -1
        first = p_sh * (1 + pieces)
        s0_at, s1_at = first if n_state >= 1 else -1, first + p_sh if n_state >= 2 else -1
    else:
        grad_at = 0 if pieces else -1
        s0_at, s1_at = (0 if n_state >= 1 else -1), (0 if n_state >= 2 else -1)
    costs_at = cdiv(item * (red_at + T), 8)
    return FusedPlan(cuda.to_device(lay), rows, in_shared, grad_at, s0_at, s1_at, red_at,
                     costs_at, 8 * (costs_at + rows + 1))


@device
def divmod32(e, d):
    """(e // d, e % d) for 32-bit e and d, in 32-bit arithmetic (div.u32, not div.s64)."""
    q = _u(_u32(_u32(e) // _u32(d)))
    return q, _u(e) - q * _u(d)


@device
def gather_rows(sh, a0, ld0, X, order, lo, n, n_in):
    """a[0] of a piece in shared memory, sh[a0 + s ld0 + j] = X[order[lo + s], j] for its
    n samples, in order; consecutive threads on consecutive inputs j (coalesced)."""
    t, T = _u(cuda.threadIdx.x), _u(cuda.blockDim.x)
    q, r = divmod32(T, n_in)
    s, j = divmod32(t, n_in)
    e = t  # (s, j) = divmod(e, n_in), stepped
    while e < n * n_in:  # a counted loop without range()'s division
        sh[a0 + s * ld0 + j] = X[order[lo + s], j]
        s, j = s + q, j + r
        if j >= n_in:
            s, j = s + _1, j - n_in
        e += T


if config.SIMULATOR:
    @device
    def _lanes_sum(v, red, red_at, lane, warp, width):
        """The sum of v over the lanes of a warp, returned to every lane; the simulator's
        form, through red[red_at:] in shared memory (every thread of the block calls it)."""
        base = red_at + warp * width
        red[base + lane] = v
        cuda.syncthreads()
        total = red[base]
        for k in range(_1, width):
            total += red[base + k]
        cuda.syncthreads()
        return total
else:
    @device
    def _lanes_sum(v, red, red_at, lane, warp, width):
        """The sum of v over the lanes of a warp (width lanes: 32, or a smaller power of
        two for a block that small), to every lane: a butterfly of shuffles (every lane of
        the warp calls it)."""
        mask = _u32(_FULL >> (_u(WARP) - width))
        for k in range(5):
            off = _u(16) >> _u(k)
            if off < width:
                v += cuda.shfl_xor_sync(mask, v, off)
        return v


@device
def _fused_copy(sh, params, lay, base, lane, warp, width, n_warps, load):
    """Parameters (or a state row) between params (P,) and shared memory at sh[base:] with
    the padded layout of lay: load (global -> shared) or store. A row of W (the last one:
    the bias) per warp, j on the lanes."""
    for m in range(1, lay.shape[0]):
        n_out, n_in = _u(lay[m, _D]), _u(lay[m - 1, _D])
        g, s, ld = _u(lay[m, _GW]), _u(base + lay[m, _SW]), _u(lay[m, _LD])
        i = warp
        while i < n_out + _1:  # a counted loop without range()'s division
            width_i = n_in if i < n_out else n_out  # the bias row holds n_out values
            j = lane
            while j < width_i:  # a counted loop without range()'s division
                p, q = s + i * ld + j, g + i * n_in + j
                if load:
                    sh[p] = params[q]
                else:
                    params[q] = sh[p]
                j += width
            i += n_warps



@device
def _fused_copy_all(sh, params, state0, state1, lay, s0_at, s1_at, lane, warp, width,
                    n_warps, load):
    """_fused_copy of the parameters and of each state row the optimizer keeps in shared
    memory (s0_at, s1_at >= 0)."""
    _fused_copy(sh, params, lay, 0, lane, warp, width, n_warps, load)
    if s0_at >= 0:
        _fused_copy(sh, state0, lay, s0_at, lane, warp, width, n_warps, load)
    if s1_at >= 0:
        _fused_copy(sh, state1, lay, s1_at, lane, warp, width, n_warps, load)

@device
def _fused_forward(pb, ab, lay, m, n, red_at, lane, warp, width, n_warps, one):
    """z[m]_si = sum_j W_ij * a_sj + b_i, a = act(z) (not softmax): row i of W per warp,
    the inputs j on the lanes (coalesced wherever W lives), a shuffle sum. W[m] in pb
    (rows of stride lay[m, _LD]), activations in ab. Block-uniform loops (_lanes_sum)."""
    n_out, n_in = _u(lay[m, _D]), _u(lay[m - 1, _D])
    w, ld, code = _u(lay[m, _SW]), _u(lay[m, _LD]), lay[m, _ACT]
    a_in, ld_in = _u(lay[m - 1, _SA]), _u(lay[m - 1, _LDA])
    a_out, ld_out = _u(lay[m, _SA]), _u(lay[m, _LDA])
    for s in range(n):
        x = a_in + s * ld_in
        i0 = _0
        while i0 < n_out:  # a counted loop without range()'s division
            i = i0 + warp
            acc = one - one
            if i < n_out:
                row = w + i * ld
                j = lane
                while j < n_in:  # a counted loop without range()'s division
                    acc += pb[row + j] * ab[x + j]
                    j += width
            acc = _lanes_sum(acc, ab, red_at, lane, warp, width)
            if i < n_out and lane == _0:
                acc += pb[w + n_out * ld + i]
                ab[a_out + s * ld_out + i] = (acc if code == SOFTMAX
                                              else scalar.activate(code, acc, one))
            i0 += n_warps


@device
def _fused_delta(pb, ab, lay, m, n, t, T, one):
    """delta[m]_sj = act'(a_sj) * sum_i W[m+1]_ij * delta[m+1]_si, one thread per (s, j),
    j on the lanes (W[m+1]_ij read along its rows). The sum over i steps two offsets (W
    down a column, delta along a row): a counted loop without range()'s bookkeeping."""
    n_here, n_next = _u(lay[m, _D]), _u(lay[m + 1, _D])
    w, ld, code = _u(lay[m + 1, _SW]), _u(lay[m + 1, _LD]), lay[m, _ACT]
    d, a, lda = _u(lay[m, _SD]), _u(lay[m, _SA]), _u(lay[m, _LDA])
    d_next, ld_next = _u(lay[m + 1, _SD]), _u(lay[m + 1, _LDA])
    q, r = divmod32(T, n_here)
    s, j = divmod32(t, n_here)
    e_ = t  # (s, j) = divmod(e, n_here), stepped
    while e_ < n * n_here:  # a counted loop without range()'s division
        acc = one - one
        pw = w + j                      # W[m+1]_ij, i = 0, 1, ...: down column j
        pd = d_next + s * ld_next       # delta[m+1]_si along row s
        end = pd + n_next
        while pd < end:
            acc += pb[pw] * ab[pd]
            pw += ld
            pd += _1
        ab[d + s * lda + j] = acc * scalar.derivative(code, ab[a + s * lda + j], one)
        s, j = s + q, j + r
        if j >= n_here:
            s, j = s + _1, j - n_here
        e_ += T


@device
def _fused_grad(ab, lay, m, n, i, j, one):
    """sum_s delta[m]_si * a[m-1]_sj over the n samples of a piece (j = D[m-1]: the bias),
    s in order; two offsets stepped by a row each (no range() bookkeeping)."""
    n_in = _u(lay[m - 1, _D])
    lda, ld_in = _u(lay[m, _LDA]), _u(lay[m - 1, _LDA])
    pd = _u(lay[m, _SD]) + i
    end = pd + n * lda
    acc = one - one
    if j < n_in:
        pa = _u(lay[m - 1, _SA]) + j
        while pd < end:
            acc += ab[pd] * ab[pa]
            pd += lda
            pa += ld_in
    else:  # the bias: a column of ones
        while pd < end:
            acc += ab[pd]
            pd += lda
    return acc


@device
def _fused_grad_update(pb, gb, s0b, s1b, ab, lay, n, first, last, scale, grad_at, s0_at, s1_at,
                       has_s0, has_s1, opt, c, use_bias, lane, warp, width, n_warps, one):
    """Per parameter, a row of W per warp and j on the lanes: the piece's gradient sum
    plus the earlier pieces' from the gradient buffer gb[grad_at:]; on the batch's last
    piece the optimizer step of pb (state rows in s0b[s0_at:], s1b[s1_at:]; constants c,
    scalar.step_constants), else the sum goes into the buffer."""
    zero = one - one
    for m in range(1, lay.shape[0]):
        n_out, n_in = _u(lay[m, _D]), _u(lay[m - 1, _D])
        w, ld = _u(lay[m, _SW]), _u(lay[m, _LD])
        i = warp
        while i < n_out:  # a counted loop without range()'s division
            j = lane
            while j < n_in + _1:  # a counted loop without range()'s division
                p = w + i * ld + j if j < n_in else w + n_out * ld + i
                g = _fused_grad(ab, lay, m, n, i, j, one)
                if not first:
                    g += gb[grad_at + p]
                if not last:
                    gb[grad_at + p] = g
                elif j < n_in or use_bias:
                    g = scalar.penalized_gradient(g, pb[p], scale, c[3]) if j < n_in else scale * g
                    v0 = s0b[s0_at + p] if has_s0 else zero
                    v1 = s1b[s1_at + p] if has_s1 else zero
                    pb[p], v0, v1 = scalar.optimizer_step(opt, pb[p], g, v0, v1, load_step(c), one)
                    if has_s0:
                        s0b[s0_at + p] = v0
                    if has_s1:
                        s1b[s1_at + p] = v1
                j += width
            i += n_warps


@device
def store_step(c, hyper, t, one):
    """c[0..14] = the fields of scalar.step_constants(hyper, t) in the working dtype
    (nesterov as 0/1), for the block's threads to share."""
    k = scalar.step_constants(hyper, t)
    dt = one - one
    c[0], c[1], c[2], c[3] = k.lr + dt, k.momentum + dt, one if k.nesterov else dt, k.l2 + dt
    c[4], c[5], c[6] = k.step_size + dt, k.beta1 + dt, k.beta2 + dt
    c[7], c[8], c[9], c[10] = k.decay1 + dt, k.decay2 + dt, k.sqrt_bc2 + dt, k.eps + dt
    c[11], c[12], c[13], c[14] = k.eta_minus + dt, k.eta_plus + dt, k.step_min + dt, k.step_max + dt


@device
def load_step(c):
    """The scalar.Step that store_step wrote into c."""
    return scalar.Step(c[0], c[1], c[2] != 0, c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10],
                       c[11], c[12], c[13], c[14])


@jit(cache=True)
def fused_epoch(params, state0, state1, grad, X, Y, SW, order, scales, batch_size, lay, rows,
                in_shared, grad_at, s0_at, s1_at, red_at, costs_at, loss, opt, hyper, t0,
                use_bias, stats):
    """train_epoch in one launch of one block: every batch -- forward, costs and output
    deltas, hidden deltas, gradients and the optimizer step -- in phases separated by
    syncthreads, a batch in pieces of at most ``rows`` samples whose activations and
    deltas stay in shared memory. Parameters (state rows, gradient buffer) in shared
    memory when in_shared, loaded once and stored at the end; else in params, state0,
    state1 and grad. Layout from fused_plan; SW, stats as train_epoch's; scales[k] the
    update scale of batch k (1 / its summed weight; 0: no update); hyper (N_HYPER,) the
    float64 hyperparameters, t0 the updates made before (Adam's bias corrections)."""
    sh = cuda.shared.array(0, params.dtype)
    sh64 = cuda.shared.array(0, _FLOAT64)  # the same memory: costs and stop flag at costs_at
    costs = sh64[costs_at:costs_at + rows]
    stop = sh64[costs_at + rows:costs_at + rows + 1]
    c = cuda.local.array(15, params.dtype)
    one = params.dtype.type(1)
    t, T = _u(cuda.threadIdx.x), _u(cuda.blockDim.x)
    width = _u(min(WARP, cuda.blockDim.x))
    warp, lane = divmod32(t, width)
    n_warps = divmod32(T, width)[0]
    L = lay.shape[0] - 1
    n_in, n_out, code = _u(lay[0, _D]), lay[L, _D], lay[L, _ACT]
    binary = code == SIGMOID
    g_at, r_at = _u(max(grad_at, 0)), _u(red_at)
    o0, o1 = _u(max(s0_at, 0)), _u(max(s1_at, 0))
    if in_shared:
        _fused_copy_all(sh, params, state0, state1, lay, s0_at, s1_at, lane, warp, width,
                        n_warps, True)
    # Each phase that reads W is called with sh itself or with the global arrays, never
    # with a variable that may be either: NVVM then proves sh's accesses shared and emits
    # ld.shared / st.shared for them (a pointer that may be either compiles to generic
    # loads, which resolve their address space on every access).
    if t == _0:
        stop[0] = 0.0
    batch_cost, batch_weight = 0.0, 0.0  # thread 0's
    weighted = SW.shape[0] > 0
    n_total = order.shape[0]
    step, batch = t0, -1
    start = 0
    while start < n_total:  # a counted loop without range()'s division
        end = min(start + batch_size, n_total)
        batch += 1
        scale = scales[batch]
        if scale != 0:
            step += 1
            store_step(c, hyper, step, one)
        lo = start
        while lo < end:  # a counted loop without range()'s division
            n_i = min(rows, end - lo)
            n, lo_u = _u(n_i), _u(lo)
            cuda.syncthreads()
            gather_rows(sh, _u(lay[0, _SA]), _u(lay[0, _LDA]), X, order, lo_u, n, n_in)
            cuda.syncthreads()
            for m in range(1, L + 1):
                if in_shared:
                    _fused_forward(sh, sh, lay, m, n, r_at, lane, warp, width, n_warps, one)
                else:
                    _fused_forward(params, sh, lay, m, n, r_at, lane, warp, width, n_warps,
                                   one)
                cuda.syncthreads()
            a, d, ld = lay[L, _SA], lay[L, _SD], lay[L, _LDA]
            sr = np.int64(t)  # int64: scalar's row offsets
            while sr < n_i:  # a counted loop without range()'s division
                if code == SOFTMAX:
                    scalar.softmax_row(sh, a + sr * ld, n_out, one)
                row = order[lo + sr]
                w = SW[row] if weighted else one
                costs[sr] = scalar.row_cost(sh, a + sr * ld, Y, row, n_out, binary, loss) * w
                scalar.output_delta_row(sh, d + sr * ld, sh, a + sr * ld, Y, row, n_out, code,
                                        loss, one)
                if weighted:
                    for i in range(n_out):
                        sh[d + sr * ld + i] *= w
                sr += np.int64(T)
            cuda.syncthreads()
            if t == _0:
                for s in range(n_i):
                    batch_cost += costs[s]
                    batch_weight += SW[order[lo + s]] if weighted else 1.0
                if lo + n_i == end:
                    if math.isfinite(batch_cost):
                        stats[0] += batch_cost
                        stats[1] += end - start
                        stats[3] += batch_weight
                    else:
                        stats[2] = 1.0
                        stop[0] = 1.0
                    batch_cost, batch_weight = 0.0, 0.0
            for m in range(L - 1, 0, -1):
                if in_shared:
                    _fused_delta(sh, sh, lay, m, n, t, T, one)
                else:
                    _fused_delta(params, sh, lay, m, n, t, T, one)
                cuda.syncthreads()
            cuda.syncthreads()
            if stop[0] != 0:
                break
            first, last = lo == start, lo + n_i == end
            if scale != 0 and in_shared:
                _fused_grad_update(sh, sh, sh, sh, sh, lay, n, first, last, scale, g_at, o0,
                                   o1, s0_at >= 0, s1_at >= 0, opt, c, use_bias, lane, warp,
                                   width, n_warps, one)
            elif scale != 0:
                _fused_grad_update(params, grad, state0, state1, sh, lay, n, first, last,
                                   scale, g_at, o0, o1, s0_at >= 0, s1_at >= 0, opt, c,
                                   use_bias, lane, warp, width, n_warps, one)
            lo += rows
        if stop[0] != 0:
            break
        start += batch_size
    cuda.syncthreads()
    if in_shared:
        _fused_copy_all(sh, params, state0, state1, lay, s0_at, s1_at, lane, warp, width,
                        n_warps, False)
