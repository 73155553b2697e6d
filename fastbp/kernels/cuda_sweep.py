"""Many models per launch (fastbp.Sweep on the GPU): a whole epoch of K models of one
structure in one launch, one thread block per model.

Block k runs model k's epoch -- train_epoch on row k of every (K, ...) array, with its own
sample order and hyperparameters -- from the first batch to the last: per batch the
gather of its samples, forward, costs and output errors, hidden deltas, and the gradient
with the optimizer step fused in, in phases separated by ``syncthreads``. Nothing crosses
blocks: no atomics, no split sums, no block-to-block communication. Every sum has one
owner thread and runs in a fixed order (a unit's bias, then its inputs j = 0, 1, ..., as
the loop kernels sum; a gradient's samples in batch order; the costs in sample order, by
thread 0), so its bits do not depend on which thread owns it, nor on the block size; a
batch's pieces depend on the network, dtype and batch size alone (``plan_for``). So model
k computes the same bits whatever K is, wherever its block runs and on any GPU: a K = 1
launch of model k gives the same result bit for bit.

Where things live (``plan_for`` chooses, per network, batch size and optimizer):

- shared memory, always: a piece of the batch (the whole batch, or pieces of at most
  SWEEP_MAX_ROWS samples when it is larger) -- its activations a[0..L] and deltas
  delta[1..L], each row padded to an odd stride so that lanes reading down a column hit
  distinct banks, with a last column of ones after a[m] for m < L, so that the bias is
  column D[m-1] of the gradient product -- and the per-sample costs;
- shared memory when they fit (mode "all"): the parameters, each W[m] row padded to an
  odd stride with b[m]_i as its last column, and the optimizer state in the same layout;
  mode "params": the parameters alone, the state in global memory; mode "none": all in
  global memory (params, state), with a transposed copy of each W in a per-model scratch
  row so that the forward pass reads W coalesced (lanes over units) and the delta pass
  reads W itself (lanes over inputs), as loop_online keeps both layouts on the CPU;
- a batch in several pieces sums its gradient in a per-model scratch row (global memory)
  before the one update.

Above the 48 KiB a block gets by default, shared memory is opted into through the
driver's attribute (MAX_DYNAMIC_SHARED_SIZE_BYTES) up to the device's maximum; where that
fails, the plan is made again within 48 KiB.

The three products of a layer are register-blocked the same way (``_dot``): a thread owns
SWEEP_TILE_ROWS output rows (samples of the forward and delta products, units of the
gradient) at one output column, so each value of the column operand read from shared
memory feeds SWEEP_TILE_ROWS multiply-adds; the row operand is read by all lanes of a row
group at one address (a broadcast). Output columns run along the lanes: a warp covers g
columns (g the smallest power of two >= the columns, at most 32) and 32 / g row groups,
so that a 10-unit output layer keeps 20 of 32 lanes busy instead of 10. Warps take tiles
in turn. Rows and columns past the end read a clamped (valid) address and are not stored,
so the inner loop has no branch. Integer division only as 32-bit ``divmod32``, once per tile.

One block per model, not one warp: the number of models resident on an SM is bounded by
shared memory (a 64-32-10 model with momentum needs about 29 KiB, 7 per SM of an H100)
and by registers (92 per thread in float32, 128 in float64 at sm_90: 5 blocks of 128
threads per SM) far more often than by threads, so several warps per model keep the SM's
warp slots filled; for the smallest networks, whose products are at most one warp of
tiles, the block is one warp (``plan_for``), which makes it a warp per model. Where
halving the block lets one wave of blocks hold all K models, ``cuda.sweep_threads``
halves it (the driver's occupancy calculator decides): a partial second wave would leave
most SMs idle.

The kernel keeps little live across its phases (each phase reads its offsets from the
layout table and the plan, and thread 0's tallies live in shared memory), which is what
keeps it at those register counts; ``_dot``'s offsets are 32-bit.
"""
import math
from typing import NamedTuple

import numpy as np

from fastbp.kernels import cuda_config as config
from fastbp.kernels import scalar
from fastbp.kernels.codes import ADAM, H_MOMENTUM, RPROP, SIGMOID, SOFTMAX
from fastbp.kernels.cuda_config import cdiv, cuda, jit
from fastbp.kernels.cuda_fused import store_step, divmod32, load_step

device = jit(device=True)
_FLOAT64 = np.dtype(np.float64)  # an instance: the simulator's shared arrays need itemsize
_u, _u32 = np.uint64, np.uint32
_0, _1 = _u(0), _u(1)
WARP = 32
RA = config.SWEEP_TILE_ROWS  # output rows per thread in the products: compile-time
_RA = _u(RA)
_LG_RA = _u(RA.bit_length() - 1)
_N_CST = 16  # shared constants of an update: the 15 fields of scalar.Step, then its scale

# Columns of the layout table ``lay`` (L + 1, 12), row m for layer m (int64):
_D, _ACT, _W, _B, _SW, _LDW, _SA, _LDA, _SD, _LDD, _LG, _LGG = range(12)
#   D[m]; activation code of layer m; offsets of W[m] and of b[m] in params (the flat layout
#   of the backend contract); offset of W[m] in the padded shared layout and its row stride
#   (odd, > D[m-1]: b[m]_i is column D[m-1] of row i); offset of block m of the activations
#   in shared memory and its row stride (odd, > D[m]: column D[m] holds ones); the same for
#   the deltas (stride odd, >= D[m]); log2 of the lane group width of the forward and delta
#   products (columns D[m]) and of the gradient product (columns D[m-1] + 1).

# Slots of the per-plan int64 array ``cfg`` (one device array instead of many scalar
# arguments: numba's host cost grows with every argument of a launch).
(_C_BATCH, _C_ROWS, _C_LOSS, _C_OPT, _C_BIAS, _C_PSH, _C_SSH, _C_NSTATE, _C_S0, _C_S1,
 _C_GBUF, _C_WT, _C_COSTS, _C_CST, _C_LGW, _N_CFG) = range(16)
#   batch size, samples per piece, loss code, optimizer code, use_bias; parameters in
#   shared memory, state in shared memory (0/1); state rows used (0 plain SGD, 1 momentum,
#   2 Adam and RPROP); shared offsets of state rows 0 and 1; scratch offsets of the
#   gradient buffer and of W^T (-1: none); offset in float64 elements of the costs, which
#   thread 0's tallies follow (_T_*); offset of the update constants in working-dtype
#   elements; log2 of the warp width min(32, threads).

# Thread 0's tallies of an epoch, float64 slots after the costs (shared memory rather than
# registers: the kernel keeps as little as it can live across its phases, see
# ``sweep_epoch_kernel``).
_T_STOP, _T_COST, _T_SEEN, _T_WEIGHT, _T_BATCH_COST, _T_BATCH_WEIGHT, _T_STEP, _N_T = range(8)
#   a batch's cost was not finite (1.0); sum of weighted costs, samples and weights of the
#   batches applied; the running batch's cost and weight; the updates made (Adam's t).


# -- the products -----------------------------------------------------------------------------

@device
def _dot(acc, X, x_off, x_row, x_k, r0, r_step, x_rows, M, m_off, m_k, k_n):
    """acc[a] += sum_{k < k_n} X[x_off + r_a x_row + k x_k] * M[m_off + k m_k], k in order,
    for the rows r_a = r0 + a r_step, a < RA (a row past x_rows reads row x_rows - 1; the
    caller does not store it). The inner loop: RA multiply-adds per value of M. Offsets in
    32 bits (a register each, not two; they index one model's row of at most P elements, or
    shared memory)."""
    xa = cuda.local.array(RA, np.uint32)
    last = x_rows - _1
    for a in range(_RA):
        xa[a] = _u32(x_off + min(r0 + a * r_step, last) * x_row)
    xk = _u32(x_k)
    mk = _u32(m_k)
    pm = _u32(m_off)
    end = _u32(m_off + k_n * m_k)
    while pm < end:  # a counted loop without range()'s bookkeeping
        mv = M[pm]
        for a in range(_RA):
            acc[a] += X[xa[a]] * mv
            xa[a] = _u32(xa[a] + xk)
        pm = _u32(pm + mk)


@device
def _grid(rows, cols, lg_cols, lgw):
    """(lg, row groups, tile rows' log2, column blocks, tiles) of a product of rows x cols
    outputs: lanes in groups of g = 2^lg columns (lg = lg_cols, at most log2 of the warp
    width 2^lgw), 2^(lgw - lg) row groups per warp, RA rows per thread."""
    lg = min(lg_cols, lgw)
    groups = _1 << (lgw - lg)
    lg_tile = _LG_RA + lgw - lg  # log2(RA * groups)
    col_blocks = (cols + (_1 << lg) - _1) >> lg
    row_blocks = (rows + (_1 << lg_tile) - _1) >> lg_tile
    return lg, groups, lg_tile, col_blocks, row_blocks * col_blocks


@device
def _lanes(cfg):
    """(lane, warp, warps, log2 of the warp width) of this thread: lanes of min(32,
    blockDim.x) threads (a power of two, cfg's _C_LGW)."""
    lgw = _u(cfg[_C_LGW])
    t = _u(cuda.threadIdx.x)
    return t & ((_1 << lgw) - _1), t >> lgw, _u(cuda.blockDim.x) >> lgw, lgw


@device
def _forward(sh, wb, w_row, w_k, w_of, bb, b_of, b_step, lay, cfg, m, n, one):
    """z[m]_si = b_i + sum_j W[m]_ij a[m-1]_sj (the bias first, then j in order: the loop
    kernels' order), a[m]_si = act(z) (softmax: z, applied by the cost phase), for the n
    samples of the piece in sh. W[m]_ij at wb[w_of + i w_row + j w_k], b_i at
    bb[b_of + i b_step]. Tiles: RA * groups samples x g units; units i on the lanes."""
    n_out, n_in, code = _u(lay[m, _D]), _u(lay[m - 1, _D]), lay[m, _ACT]
    a_in, ld_in = _u(lay[m - 1, _SA]), _u(lay[m - 1, _LDA])
    a_out, ld_out = _u(lay[m, _SA]), _u(lay[m, _LDA])
    lane, warp, n_warps, lgw = _lanes(cfg)
    lg, groups, lg_tile, col_blocks, tiles = _grid(n, n_out, _u(lay[m, _LG]), lgw)
    rg, col = lane >> lg, lane & ((_1 << lg) - _1)
    acc = cuda.local.array(RA, sh.dtype)
    tile = warp
    while tile < tiles:  # a counted loop without range()'s division
        rb, cb = divmod32(tile, col_blocks)
        i = (cb << lg) + col
        ic = min(i, n_out - _1)
        s0 = (rb << lg_tile) + rg
        bias = bb[b_of + ic * b_step]
        for a in range(_RA):
            acc[a] = bias
        _dot(acc, sh, a_in, ld_in, _1, s0, groups, n, wb, w_of + ic * w_row, w_k, n_in)
        for a in range(_RA):
            s = s0 + a * groups
            if s < n and i < n_out:
                z = acc[a]
                sh[a_out + s * ld_out + i] = z if code == SOFTMAX else scalar.activate(code, z,
                                                                                       one)
        tile += n_warps


@device
def _delta(sh, wb, w_row, w_k, w_of, lay, cfg, m, n, one):
    """delta[m]_sj = act_m'(a_sj) * sum_i W[m+1]_ij delta[m+1]_si (i in order), with the
    weights of the forward pass, for the n samples of the piece in sh. W[m+1]_ij at
    wb[w_of + i w_row + j w_k]. Tiles: RA * groups samples x g units; units j on the lanes
    (contiguous in W's rows: coalesced where W is in global memory)."""
    n_here, n_next, code = _u(lay[m, _D]), _u(lay[m + 1, _D]), lay[m, _ACT]
    d_next, ld_next = _u(lay[m + 1, _SD]), _u(lay[m + 1, _LDD])
    d_out, ld_d = _u(lay[m, _SD]), _u(lay[m, _LDD])
    a_at, ld_a = _u(lay[m, _SA]), _u(lay[m, _LDA])
    lane, warp, n_warps, lgw = _lanes(cfg)
    lg, groups, lg_tile, col_blocks, tiles = _grid(n, n_here, _u(lay[m, _LG]), lgw)
    rg, col = lane >> lg, lane & ((_1 << lg) - _1)
    acc = cuda.local.array(RA, sh.dtype)
    tile = warp
    while tile < tiles:  # a counted loop without range()'s division
        rb, cb = divmod32(tile, col_blocks)
        j = (cb << lg) + col
        jc = min(j, n_here - _1)
        s0 = (rb << lg_tile) + rg
        for a in range(_RA):
            acc[a] = one - one
        _dot(acc, sh, d_next, ld_next, _1, s0, groups, n, wb, w_of + jc * w_k, w_row, n_next)
        for a in range(_RA):
            s = s0 + a * groups
            if s < n and j < n_here:
                sh[d_out + s * ld_d + j] = acc[a] * scalar.derivative(
                    code, sh[a_at + s * ld_a + j], one)
        tile += n_warps


@device
def _grad_update(sh, pb, s0b, s1b, scr, lay, cfg, m, n, first, last, psh, ssh, one):
    """gW[m]_ij = sum_s delta[m]_si a[m-1]_sj, gb[m]_i = sum_s delta[m]_si (s in order: the
    column of ones after a[m-1]) over the piece, plus the earlier pieces' sums from the
    gradient buffer in scr; on the batch's last piece the optimizer step
    (scalar.optimizer_step with the constants and scale in sh at cfg's _C_CST: a scale of
    0 makes no update), else the sum goes back into the buffer.

    W[m] (and b[m]) in pb, state rows in s0b and s1b: in the padded shared layout where psh
    (ssh), at the offsets cfg gives, else in the flat layout of params (global rows); with
    cfg's _C_WT >= 0, W^T in scr follows W. Tiles: RA * groups units i x g inputs j; j on
    the lanes."""
    n_out, n_in = _u(lay[m, _D]), _u(lay[m - 1, _D])
    d_at, ld_d = _u(lay[m, _SD]), _u(lay[m, _LDD])
    a_at, ld_a = _u(lay[m - 1, _SA]), _u(lay[m - 1, _LDA])
    lane, warp, n_warps, lgw = _lanes(cfg)
    lg, groups, lg_tile, col_blocks, tiles = _grid(n_out, n_in + _1, _u(lay[m, _LGG]), lgw)
    rg, col = lane >> lg, lane & ((_1 << lg) - _1)
    prm = _u(cfg[_C_CST])
    scale = sh[prm + _u(_N_CST - 1)]
    update = last and scale != one - one
    acc = cuda.local.array(RA, sh.dtype)
    tile = warp
    while tile < tiles:  # a counted loop without range()'s division
        rb, cb = divmod32(tile, col_blocks)
        j = (cb << lg) + col
        i0 = (rb << lg_tile) + rg
        for a in range(_RA):
            acc[a] = one - one
        _dot(acc, sh, d_at, _1, ld_d, i0, groups, n_out, sh, a_at + min(j, n_in), ld_a, n)
        for a in range(_RA):
            i = i0 + a * groups
            if i < n_out and j <= n_in:
                flat = _u(lay[m, _W]) + i * n_in + j if j < n_in else _u(lay[m, _B]) + i
                g = acc[a]
                if not first:
                    g += scr[_u(cfg[_C_GBUF]) + flat]
                if not last:
                    scr[_u(cfg[_C_GBUF]) + flat] = g
                elif update and (j < n_in or cfg[_C_BIAS] != 0):
                    padded = _u(lay[m, _SW]) + i * _u(lay[m, _LDW]) + j
                    _step_one(sh, pb, s0b, s1b, scr, cfg, padded if psh else flat,
                              padded if ssh else flat, g, scale, j < n_in,
                              _u(lay[m, _W]) + j * n_out + i, one)
        tile += n_warps


@device
def _step_one(sh, pb, s0b, s1b, scr, cfg, p, q, g, scale, weight, wt_at, one):
    """One parameter's update: pb[p] <- scalar.optimizer_step from the summed gradient g
    (penalized and scaled as loop.update_layer does), its state at s0b[q (+ the shared
    offset of row 0 where the state is in shared memory)] and s1b likewise; the constants
    of the update from sh (cfg's _C_CST). A weight also goes to W^T at scr[wt_at] when
    cfg's _C_WT >= 0."""
    zero = one - one
    n_state = cfg[_C_NSTATE]
    ssh = cfg[_C_SSH] != 0
    q0 = q + _u(cfg[_C_S0]) if ssh else q
    q1 = q + _u(cfg[_C_S1]) if ssh and n_state >= 2 else q
    prm = _u(cfg[_C_CST])
    c = load_step(sh[prm:prm + _u(_N_CST)])  # what thread 0 wrote for this update
    w = pb[p]
    g = scalar.penalized_gradient(g, w, scale, c.l2) if weight else scale * g
    v0 = s0b[q0] if n_state >= 1 else zero
    v1 = s1b[q1] if n_state >= 2 else zero
    w, v0, v1 = scalar.optimizer_step(cfg[_C_OPT], w, g, v0, v1, c, one)
    pb[p] = w
    if n_state >= 1:
        s0b[q0] = v0
    if n_state >= 2:
        s1b[q1] = v1
    if cfg[_C_WT] >= 0 and weight:
        scr[_u(cfg[_C_WT]) + wt_at] = w


@device
def _gather(sh, X, order, lay, lo, n):
    """a[0] of the piece: the n samples order[lo:lo + n] of X, in order; consecutive
    threads on consecutive inputs j (coalesced)."""
    n_in, a0, ld0 = _u(lay[0, _D]), _u(lay[0, _SA]), _u(lay[0, _LDA])
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


@device
def _costs(sh, sh64, Y, SW, order, lay, cfg, lo, n, one):
    """Per sample of the piece, a thread each: softmax of a[L] (for a softmax output), the
    cost C(a[L], y) times the sample's weight (float64, into sh64 at cfg's _C_COSTS), and
    delta[L] = dC/da[L] (*) act_L'(z), times the weight (scalar.output_delta_row)."""
    L = lay.shape[0] - 1
    n_out, code, loss = lay[L, _D], lay[L, _ACT], cfg[_C_LOSS]
    a_L, ld_a, d_L, ld_d = lay[L, _SA], lay[L, _LDA], lay[L, _SD], lay[L, _LDD]
    costs = cfg[_C_COSTS]
    weighted = SW.shape[0] > 0
    s = np.int64(cuda.threadIdx.x)  # int64: scalar's row offsets
    while s < n:  # a counted loop without range()'s division
        row = order[lo + s]
        a = a_L + s * ld_a
        if code == SOFTMAX:
            scalar.softmax_row(sh, a, n_out, one)
        w = SW[row] if weighted else one
        sh64[costs + s] = scalar.row_cost(sh, a, Y, row, n_out, code == SIGMOID, loss) * w
        scalar.output_delta_row(sh, d_L + s * ld_d, sh, a, Y, row, n_out, code, loss, one)
        if weighted:
            for i in range(n_out):
                sh[d_L + s * ld_d + i] *= w
        s += np.int64(cuda.blockDim.x)


@device
def _tally(sh, sh64, SW, order, hyper, cfg, lo, n, batch_n, last, one):
    """Thread 0, after the cost phase: the piece's costs and weights into the batch's
    running sums, samples in order; on the batch's last piece, the batch into the epoch's
    tallies if its cost is finite (else the stop flag), and the constants and scale of its
    update into sh (scalar.step_constants of the next update; scale 1 / the batch's
    weight, 0 for a batch of weight 0, which makes no update)."""
    tally = cfg[_C_COSTS] + cfg[_C_ROWS]
    weighted = SW.shape[0] > 0
    cost, weight = sh64[tally + _T_BATCH_COST], sh64[tally + _T_BATCH_WEIGHT]
    for s in range(n):
        cost += sh64[cfg[_C_COSTS] + s]
        weight += SW[order[lo + s]] if weighted else 1.0
    sh64[tally + _T_BATCH_COST], sh64[tally + _T_BATCH_WEIGHT] = cost, weight
    if not last:
        return
    sh64[tally + _T_BATCH_COST], sh64[tally + _T_BATCH_WEIGHT] = 0.0, 0.0
    if not math.isfinite(cost):
        sh64[tally + _T_STOP] = 1.0
        return
    sh64[tally + _T_COST] += cost
    sh64[tally + _T_SEEN] += batch_n
    sh64[tally + _T_WEIGHT] += weight
    prm = cfg[_C_CST]
    if weight > 0:
        step = sh64[tally + _T_STEP] + 1.0
        sh64[tally + _T_STEP] = step
        store_step(sh[prm:prm + _N_CST], hyper, np.int64(step), one)
        sh[prm + _N_CST - 1] = one / sh.dtype.type(weight)
    else:
        sh[prm + _N_CST - 1] = one - one


# -- moving parameters in and out -------------------------------------------------------------

@device
def _copy(sh, at, flat, lay, t, T, load):
    """Parameters (or a state row) between a flat row (the layout of params) and the padded
    shared layout at sh[at:]: load (flat -> shared) or store. One flat index per thread and
    step, consecutive threads on consecutive flat indices (coalesced)."""
    for m in range(1, lay.shape[0]):
        n_out, n_in = _u(lay[m, _D]), _u(lay[m - 1, _D])
        w_fl, b_fl = _u(lay[m, _W]), _u(lay[m, _B])
        w_sh, ld_w = at + _u(lay[m, _SW]), _u(lay[m, _LDW])
        q, r = divmod32(T, n_in)
        i, j = divmod32(t, n_in)
        e = t  # (i, j) = divmod(e, n_in), stepped
        while e < n_out * n_in:  # a counted loop without range()'s division
            if load:
                sh[w_sh + i * ld_w + j] = flat[w_fl + e]
            else:
                flat[w_fl + e] = sh[w_sh + i * ld_w + j]
            i, j = i + q, j + r
            if j >= n_in:
                i, j = i + _1, j - n_in
            e += T
        i = t
        while i < n_out:  # the biases: column n_in of the padded rows
            if load:
                sh[w_sh + i * ld_w + n_in] = flat[b_fl + i]
            else:
                flat[b_fl + i] = sh[w_sh + i * ld_w + n_in]
            i += T


@device
def _transpose(wt, at, flat, lay, t, T):
    """W^T of every layer into wt[at:] (layer m's at the offset of W[m], rows of D[m]):
    the copy the forward pass reads when W stays in global memory."""
    for m in range(1, lay.shape[0]):
        n_out, n_in = _u(lay[m, _D]), _u(lay[m - 1, _D])
        w_fl = _u(lay[m, _W])
        q, r = divmod32(T, n_in)
        i, j = divmod32(t, n_in)
        e = t
        while e < n_out * n_in:  # a counted loop without range()'s division
            wt[at + w_fl + j * n_out + i] = flat[w_fl + e]
            i, j = i + q, j + r
            if j >= n_in:
                i, j = i + _1, j - n_in
            e += T


# -- the kernel -------------------------------------------------------------------------------

@jit(cache=True)
def sweep_epoch_kernel(params, state, scratch, X, Y, SW, orders, active, hyper, steps, stats,
                       lay, cfg):
    """loop.sweep_epoch for the model of this block (k = blockIdx.x): its whole epoch,
    batch by batch, as train_epoch computes it (see the module docstring for where things
    live). A model with active[k] false is left untouched.

    params   (K, P)          in/out, row k model k's (the flat layout of the contract)
    state    (K, 2, P)       in/out optimizer state
    scratch  (K, S)          per-model gradient buffer and W^T (cfg's _C_GBUF, _C_WT)
    X, Y, SW                 the data set, shared; SW (n,) or (0,)
    orders   (K, n) int64    each model's sample order
    active   (K,) bool       models to train
    hyper    (K, N_HYPER)    float64 hyperparameters, slots codes.H_*
    steps    (K, 1) int64    in/out: updates made (Adam's bias correction)
    stats    (K, 4) float64  out: train_epoch's stats of each trained model
    lay      (L + 1, 12)     int64 layout table (columns _D.._LGG)
    cfg      (_N_CFG,)       int64 plan (slots _C_*)
    """
    k = cuda.blockIdx.x
    if not active[k]:
        return
    sh = cuda.shared.array(0, params.dtype)
    sh64 = cuda.shared.array(0, _FLOAT64)  # the same memory: costs and thread 0's tallies
    one = params.dtype.type(1)
    t, T = _u(cuda.threadIdx.x), _u(cuda.blockDim.x)
    L = lay.shape[0] - 1
    # Little stays live across the phases (the loop's counters): each phase reads what it
    # needs from cfg, lay and the thread index, which keeps the registers per thread, and
    # so the models resident per SM, where a kernel of this size can have them.
    if cfg[_C_PSH] != 0:
        _copy(sh, _0, params[k], lay, t, T, True)
    if cfg[_C_SSH] != 0 and cfg[_C_NSTATE] >= 1:
        _copy(sh, _u(cfg[_C_S0]), state[k, 0], lay, t, T, True)
    if cfg[_C_SSH] != 0 and cfg[_C_NSTATE] >= 2:
        _copy(sh, _u(cfg[_C_S1]), state[k, 1], lay, t, T, True)
    if cfg[_C_WT] >= 0:
        _transpose(scratch[k], _u(cfg[_C_WT]), params[k], lay, t, T)
    for m in range(L):  # the column of ones after a[m], m < L, on every row of a piece
        s = t
        while s < _u(cfg[_C_ROWS]):
            sh[_u(lay[m, _SA]) + s * _u(lay[m, _LDA]) + _u(lay[m, _D])] = one
            s += T
    tally = cfg[_C_COSTS] + cfg[_C_ROWS]
    if t == _0:
        for i in range(_N_T):
            sh64[tally + i] = 0.0
        sh64[tally + _T_STEP] = steps[k, 0]
    start = 0
    while start < orders.shape[1]:  # a counted loop without range()'s division
        end = min(start + cfg[_C_BATCH], orders.shape[1])
        lo = start
        while lo < end:  # a counted loop without range()'s division
            n = min(cfg[_C_ROWS], end - lo)
            cuda.syncthreads()  # the previous piece's last phase is done with sh
            _gather(sh, X, orders[k], lay, _u(lo), _u(n))
            cuda.syncthreads()
            for m in range(1, L + 1):
                if cfg[_C_PSH] != 0:  # W in shared memory, b_i its row's last column
                    w_sh, ld_w = _u(lay[m, _SW]), _u(lay[m, _LDW])
                    _forward(sh, sh, ld_w, _1, w_sh, sh, w_sh + _u(lay[m - 1, _D]), ld_w,
                             lay, cfg, m, _u(n), one)
                else:  # W^T in scratch, b in params: both read along the units
                    _forward(sh, scratch[k], _1, _u(lay[m, _D]),
                             _u(cfg[_C_WT]) + _u(lay[m, _W]), params[k], _u(lay[m, _B]), _1,
                             lay, cfg, m, _u(n), one)
                cuda.syncthreads()
            _costs(sh, sh64, Y, SW, orders[k], lay, cfg, lo, n, one)
            cuda.syncthreads()
            last = lo + n == end
            if t == _0:
                _tally(sh, sh64, SW, orders[k], hyper[k], cfg, lo, n, end - start, last, one)
            for m in range(L - 1, 0, -1):
                if cfg[_C_PSH] != 0:
                    _delta(sh, sh, _u(lay[m + 1, _LDW]), _1, _u(lay[m + 1, _SW]), lay, cfg,
                           m, _u(n), one)
                else:
                    _delta(sh, params[k], _u(lay[m, _D]), _1, _u(lay[m + 1, _W]), lay, cfg,
                           m, _u(n), one)
                cuda.syncthreads()
            cuda.syncthreads()  # thread 0's stop flag and constants, for every thread
            if sh64[tally + _T_STOP] != 0:
                break
            for m in range(1, L + 1):
                if cfg[_C_PSH] != 0 and cfg[_C_SSH] != 0:
                    _grad_update(sh, sh, sh, sh, scratch[k], lay, cfg, m, _u(n), lo == start,
                                 last, True, True, one)
                elif cfg[_C_PSH] != 0:
                    _grad_update(sh, sh, state[k, 0], state[k, 1], scratch[k], lay, cfg, m,
                                 _u(n), lo == start, last, True, False, one)
                else:
                    _grad_update(sh, params[k], state[k, 0], state[k, 1], scratch[k], lay,
                                 cfg, m, _u(n), lo == start, last, False, False, one)
            lo += cfg[_C_ROWS]
        if sh64[tally + _T_STOP] != 0:
            break
        start += cfg[_C_BATCH]
    cuda.syncthreads()
    if cfg[_C_PSH] != 0:
        _copy(sh, _0, params[k], lay, t, T, False)
    if cfg[_C_SSH] != 0 and cfg[_C_NSTATE] >= 1:
        _copy(sh, _u(cfg[_C_S0]), state[k, 0], lay, t, T, False)
    if cfg[_C_SSH] != 0 and cfg[_C_NSTATE] >= 2:
        _copy(sh, _u(cfg[_C_S1]), state[k, 1], lay, t, T, False)
    if t == _0:
        steps[k, 0] = np.int64(sh64[tally + _T_STEP])
        stats[k, 0], stats[k, 1] = sh64[tally + _T_COST], sh64[tally + _T_SEEN]
        stats[k, 2], stats[k, 3] = sh64[tally + _T_STOP], sh64[tally + _T_WEIGHT]


# -- host side --------------------------------------------------------------------------------

class SweepPlan(NamedTuple):
    """How sweep_epoch lays out one model's block (see plan_for)."""
    lay: object       # (L + 1, 12) int64 device array, columns _D.._LGG
    cfg: object       # (_N_CFG,) int64 device array, slots _C_*
    mode: str         # "all", "params" or "none": what lives in shared memory
    rows: int         # samples per piece of a batch
    threads: int      # threads per block
    nbytes: int       # dynamic shared memory per block
    scratch: int      # scratch elements per model (gradient buffer, W^T)


def _pow2_log(n):
    """log2 of the smallest power of two >= n, at most log2(WARP)."""
    return min(max(int(n) - 1, 0).bit_length(), WARP.bit_length() - 1)


def _odd(n):
    return int(n) | 1


def state_rows(opt, hyper):
    """Optimizer state rows the models' updates read and write: Adam and RPROP 2, SGD 1 if
    any model has momentum (hyper (K, N_HYPER)), else 0."""
    if int(opt) in (ADAM, RPROP):
        return 2
    return int(np.any(np.asarray(hyper)[:, H_MOMENTUM] != 0))


def plan_for(net, batch_size, dtype, n_state, loss, opt, use_bias, budget):
    """The SweepPlan of a network (``cuda._Net``) for this batch size, optimizer (n_state
    state rows), loss, use_bias and shared-memory budget in bytes, or None where a piece of
    one sample does not fit; made once and kept in ``net.plans``.

    A piece is the whole batch, or SWEEP_MAX_ROWS samples, or as many as fit in 48 KiB
    beside nothing else -- never more: the pieces decide how a batch's gradient is summed,
    so they depend on the network, dtype and batch size alone, not on the device's shared
    memory or on the other models of the launch (their momentum decides n_state), and a
    model's bits do not either. Where things live changes no bit, so the mode is the first
    of "all" (parameters and state in shared memory), "params", "none" that fits the budget
    beside the piece; SWEEP_IN_SHARED names one instead.
    """
    item = np.dtype(dtype).itemsize
    key = ("sweep", int(batch_size), item, int(n_state), int(loss), int(opt), bool(use_bias),
           int(budget), config.SWEEP_MAX_ROWS, config.SWEEP_THREADS, config.SWEEP_IN_SHARED)
    if key not in net.plans:
        net.plans[key] = _make_plan(net, int(batch_size), item, int(n_state), int(loss),
                                    int(opt), bool(use_bias), int(budget))
    return net.plans[key]


# Shared memory every CUDA GPU gives a block without opting in: the pieces are cut to fit
# it, so that they are the same on every device.
PIECE_BYTES = 48 * 1024


def _make_plan(net, batch_size, item, n_state, loss, opt, use_bias, budget):
    D, L = net.D, net.L
    ldw = [0] + [_odd(D[m - 1] + 1) for m in range(1, L + 1)]
    lda = [_odd(d + 1) for d in D]
    ldd = [0] + [_odd(d) for d in D[1:]]
    p_sh = sum(D[m] * ldw[m] for m in range(1, L + 1))  # padded parameters
    per_row = sum(lda) + sum(ldd)  # a sample's activations and deltas

    def bytes_for(elements, rows):  # + the update constants, the costs and the stop flag
        return cdiv((elements + rows * per_row + _N_CST) * item, 8) * 8 + 8 * (rows + _N_T)

    rows = min(batch_size, config.SWEEP_MAX_ROWS)
    while rows >= 1 and bytes_for(0, rows) > min(PIECE_BYTES, budget):
        rows -= 1
    if rows < 1:
        return None
    sizes = {"all": p_sh * (1 + n_state), "params": p_sh, "none": 0}
    if config.SWEEP_IN_SHARED is not None:
        mode = config.SWEEP_IN_SHARED
    else:
        modes = ["all", "params", "none"] if n_state else ["all", "none"]
        mode = next(name for name in modes if bytes_for(sizes[name], rows) <= budget)
    psh, ssh = mode != "none", mode == "all" and n_state > 0
    lay = np.zeros((L + 1, 12), np.int64)
    sw, sa = 0, sizes[mode]
    sd = sa + rows * sum(lda)
    for m in range(L + 1):
        lay[m, _D], lay[m, _SA], lay[m, _LDA] = D[m], sa, lda[m]
        lay[m, _LG] = _pow2_log(D[m])
        sa += rows * lda[m]
        if m >= 1:
            lay[m, _ACT], lay[m, _W] = net.acts[m - 1], net.w[m]
            lay[m, _B] = net.w[m] + D[m] * D[m - 1]
            lay[m, _SW], lay[m, _LDW] = sw, ldw[m]
            lay[m, _SD], lay[m, _LDD] = sd, ldd[m]
            lay[m, _LGG] = _pow2_log(D[m - 1] + 1)
            sw += D[m] * ldw[m]
            sd += rows * ldd[m]
    cst = sd
    costs = cdiv((cst + _N_CST) * item, 8)
    pieces = rows < batch_size
    gbuf = 0 if pieces else -1
    wt = (net.P if pieces else 0) if mode == "none" else -1
    scratch = (net.P if pieces else 0) + (net.P if wt >= 0 else 0)
    cfg = np.zeros(_N_CFG, np.int64)
    cfg[[_C_BATCH, _C_ROWS, _C_LOSS, _C_OPT, _C_BIAS]] = batch_size, rows, loss, opt, use_bias
    cfg[[_C_PSH, _C_SSH, _C_NSTATE]] = psh, ssh, n_state
    cfg[_C_S0] = p_sh if ssh and n_state >= 1 else -1
    cfg[_C_S1] = 2 * p_sh if ssh and n_state >= 2 else -1
    cfg[[_C_GBUF, _C_WT, _C_COSTS, _C_CST]] = gbuf, wt, costs, cst
    threads = _threads(D, rows)
    cfg[_C_LGW] = min(WARP, threads).bit_length() - 1
    return SweepPlan(cuda.to_device(lay), cuda.to_device(cfg), mode, rows, threads,
                     8 * (costs + rows + _N_T), scratch)


def _threads(D, rows):
    """Threads per block: SWEEP_THREADS, or fewer warps where the largest product of a
    piece has fewer warp-sized tiles (the smallest networks then run a warp per model)."""
    T = config.SWEEP_THREADS
    width = min(WARP, T)
    lgw = width.bit_length() - 1
    tiles = 0
    for m in range(1, len(D)):
        for n_rows, cols in ((rows, D[m]), (D[m], D[m - 1] + 1)):
            lg = min(_pow2_log(cols), lgw)
            tile_rows = RA << (lgw - lg)
            tiles = max(tiles, cdiv(n_rows, tile_rows) * cdiv(cols, 1 << lg))
    return min(T, width * max(1, tiles))
