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

Where a model's parameters, optimizer state and pieces of a batch live -- shared or
global memory -- the plan decides (``cuda_sweep_plan``: the layout table ``lay`` and the
plan slots ``cfg`` that this kernel reads, a block's shared memory and threads); the
three products of a layer are in ``cuda_sweep_gemm``.

One block per model, not one warp: the number of models resident on an SM is bounded by
shared memory (a 64-32-10 model with momentum needs about 29 KiB, 7 per SM of an H100)
and by registers (92 per thread in float32, 128 in float64 at sm_90: 5 blocks of 128
threads per SM) far more often than by threads, so several warps per model keep the SM's
warp slots filled; for the smallest networks, whose products are at most one warp of
tiles, the block is one warp (``plan_for``), which makes it a warp per model. Where
halving the block lets one wave of blocks hold all K models,
``cuda_sweep_plan.sweep_threads`` halves it (the driver's occupancy calculator decides):
a partial second wave would leave most SMs idle.

The kernel keeps little live across its phases (each phase reads its offsets from the
layout table and the plan, and thread 0's tallies live in shared memory), which is what
keeps it at those register counts; ``cuda_sweep_gemm._dot``'s offsets are 32-bit.
"""
import math

import numpy as np

from fastbp.kernels import scalar
from fastbp.kernels.codes import SIGMOID, SOFTMAX
from fastbp.kernels.cuda_config import cuda, jit
from fastbp.kernels.cuda_fused import divmod32, gather_rows, store_step
from fastbp.kernels.cuda_sweep_plan import (  # the layout table and plan slots read here
    C_BATCH, C_COSTS, C_CST, C_LOSS, C_NSTATE, C_PSH, C_ROWS, C_S0, C_S1, C_SSH, C_WT,
    LAY_ACT, LAY_B, LAY_D, LAY_LDA, LAY_LDD, LAY_LDW, LAY_SA, LAY_SD, LAY_SW, LAY_W, N_CST,
    N_T, T_BATCH_COST, T_BATCH_WEIGHT, T_COST, T_SEEN, T_STEP, T_STOP, T_WEIGHT)
from fastbp.kernels.cuda_sweep_plan import plan_for  # noqa: F401  (re-exported: the host side)
from fastbp.kernels.cuda_sweep_gemm import delta_piece, forward_piece, grad_update_piece

device = jit(device=True)
_FLOAT64 = np.dtype(np.float64)  # an instance: the simulator's shared arrays need itemsize
_u = np.uint64
_0, _1 = _u(0), _u(1)


# -- a piece's samples, costs and tallies -----------------------------------------------------

@device
def _gather(sh, X, order, lay, lo, n):
    """a[0] of the piece: the n samples order[lo:lo + n] of X, in order (coalesced)."""
    gather_rows(sh, _u(lay[0, LAY_SA]), _u(lay[0, LAY_LDA]), X, order, lo, n,
                _u(lay[0, LAY_D]))


@device
def _costs(sh, sh64, Y, SW, order, lay, cfg, lo, n, one):
    """Per sample of the piece, a thread each: softmax of a[L] (for a softmax output), the
    cost C(a[L], y) times the sample's weight (float64, into sh64 at cfg's C_COSTS), and
    delta[L] = dC/da[L] (*) act_L'(z), times the weight (scalar.output_delta_row)."""
    L = lay.shape[0] - 1
    n_out, code, loss = lay[L, LAY_D], lay[L, LAY_ACT], cfg[C_LOSS]
    a_L, ld_a, d_L, ld_d = lay[L, LAY_SA], lay[L, LAY_LDA], lay[L, LAY_SD], lay[L, LAY_LDD]
    costs = cfg[C_COSTS]
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
    tally = cfg[C_COSTS] + cfg[C_ROWS]
    weighted = SW.shape[0] > 0
    cost, weight = sh64[tally + T_BATCH_COST], sh64[tally + T_BATCH_WEIGHT]
    for s in range(n):
        cost += sh64[cfg[C_COSTS] + s]
        weight += SW[order[lo + s]] if weighted else 1.0
    sh64[tally + T_BATCH_COST], sh64[tally + T_BATCH_WEIGHT] = cost, weight
    if not last:
        return
    sh64[tally + T_BATCH_COST], sh64[tally + T_BATCH_WEIGHT] = 0.0, 0.0
    if not math.isfinite(cost):
        sh64[tally + T_STOP] = 1.0
        return
    sh64[tally + T_COST] += cost
    sh64[tally + T_SEEN] += batch_n
    sh64[tally + T_WEIGHT] += weight
    prm = cfg[C_CST]
    if weight > 0:
        step = sh64[tally + T_STEP] + 1.0
        sh64[tally + T_STEP] = step
        store_step(sh[prm:prm + N_CST], hyper, np.int64(step), one)
        sh[prm + N_CST - 1] = one / sh.dtype.type(weight)
    else:
        sh[prm + N_CST - 1] = one - one


# -- moving parameters in and out -------------------------------------------------------------

@device
def _copy(sh, at, flat, lay, t, T, load):
    """Parameters (or a state row) between a flat row (the layout of params) and the padded
    shared layout at sh[at:]: load (flat -> shared) or store. One flat index per thread and
    step, consecutive threads on consecutive flat indices (coalesced)."""
    for m in range(1, lay.shape[0]):
        n_out, n_in = _u(lay[m, LAY_D]), _u(lay[m - 1, LAY_D])
        w_fl, b_fl = _u(lay[m, LAY_W]), _u(lay[m, LAY_B])
        w_sh, ld_w = at + _u(lay[m, LAY_SW]), _u(lay[m, LAY_LDW])
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
def _copy_model(sh, params, state, lay, cfg, t, T, load):
    """_copy of a model's parameters and of each optimizer state row that its plan keeps
    in shared memory (cfg's C_PSH, C_SSH, C_NSTATE)."""
    if cfg[C_PSH] != 0:
        _copy(sh, _0, params, lay, t, T, load)
    if cfg[C_SSH] != 0 and cfg[C_NSTATE] >= 1:
        _copy(sh, _u(cfg[C_S0]), state[0], lay, t, T, load)
    if cfg[C_SSH] != 0 and cfg[C_NSTATE] >= 2:
        _copy(sh, _u(cfg[C_S1]), state[1], lay, t, T, load)

@device
def _transpose(wt, at, flat, lay, t, T):
    """W^T of every layer into wt[at:] (layer m's at the offset of W[m], rows of D[m]):
    the copy the forward pass reads when W stays in global memory."""
    for m in range(1, lay.shape[0]):
        n_out, n_in = _u(lay[m, LAY_D]), _u(lay[m - 1, LAY_D])
        w_fl = _u(lay[m, LAY_W])
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
    batch by batch, as train_epoch computes it (see cuda_sweep_plan for where things
    live). A model with active[k] false is left untouched.

    params   (K, P)          in/out, row k model k's (the flat layout of the contract)
    state    (K, 2, P)       in/out optimizer state
    scratch  (K, S)          per-model gradient buffer and W^T (cfg's C_GBUF, C_WT)
    X, Y, SW                 the data set, shared; SW (n,) or (0,)
    orders   (K, n) int64    each model's sample order
    active   (K,) bool       models to train
    hyper    (K, N_HYPER)    float64 hyperparameters, slots codes.H_*
    steps    (K, 1) int64    in/out: updates made (Adam's bias correction)
    stats    (K, 4) float64  out: train_epoch's stats of each trained model
    lay      (L + 1, 12)     int64 layout table (columns LAY_D..LAY_LGG, cuda_sweep_plan)
    cfg      (N_CFG,)        int64 plan (slots C_*)
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
    _copy_model(sh, params[k], state[k], lay, cfg, t, T, True)
    if cfg[C_WT] >= 0:
        _transpose(scratch[k], _u(cfg[C_WT]), params[k], lay, t, T)
    for m in range(L):  # the column of ones after a[m], m < L, on every row of a piece
        s = t
        while s < _u(cfg[C_ROWS]):
            sh[_u(lay[m, LAY_SA]) + s * _u(lay[m, LAY_LDA]) + _u(lay[m, LAY_D])] = one
            s += T
    tally = cfg[C_COSTS] + cfg[C_ROWS]
    if t == _0:
        for i in range(N_T):
            sh64[tally + i] = 0.0
        sh64[tally + T_STEP] = steps[k, 0]
    start = 0
    while start < orders.shape[1]:  # a counted loop without range()'s division
        end = min(start + cfg[C_BATCH], orders.shape[1])
        lo = start
        while lo < end:  # a counted loop without range()'s division
            n = min(cfg[C_ROWS], end - lo)
            cuda.syncthreads()  # the previous piece's last phase is done with sh
            _gather(sh, X, orders[k], lay, _u(lo), _u(n))
            cuda.syncthreads()
            for m in range(1, L + 1):
                if cfg[C_PSH] != 0:  # W in shared memory, b_i its row's last column
                    w_sh, ld_w = _u(lay[m, LAY_SW]), _u(lay[m, LAY_LDW])
                    forward_piece(sh, sh, ld_w, _1, w_sh, sh, w_sh + _u(lay[m - 1, LAY_D]),
                                  ld_w, lay, cfg, m, _u(n), one)
                else:  # W^T in scratch, b in params: both read along the units
                    forward_piece(sh, scratch[k], _1, _u(lay[m, LAY_D]),
                                  _u(cfg[C_WT]) + _u(lay[m, LAY_W]), params[k],
                                  _u(lay[m, LAY_B]), _1, lay, cfg, m, _u(n), one)
                cuda.syncthreads()
            _costs(sh, sh64, Y, SW, orders[k], lay, cfg, lo, n, one)
            cuda.syncthreads()
            last = lo + n == end
            if t == _0:
                _tally(sh, sh64, SW, orders[k], hyper[k], cfg, lo, n, end - start, last, one)
            for m in range(L - 1, 0, -1):
                if cfg[C_PSH] != 0:
                    delta_piece(sh, sh, _u(lay[m + 1, LAY_LDW]), _1, _u(lay[m + 1, LAY_SW]),
                                lay, cfg, m, _u(n), one)
                else:
                    delta_piece(sh, params[k], _u(lay[m, LAY_D]), _1, _u(lay[m + 1, LAY_W]),
                                lay, cfg, m, _u(n), one)
                cuda.syncthreads()
            cuda.syncthreads()  # thread 0's stop flag and constants, for every thread
            if sh64[tally + T_STOP] != 0:
                break
            for m in range(1, L + 1):
                if cfg[C_PSH] != 0 and cfg[C_SSH] != 0:
                    grad_update_piece(sh, sh, sh, sh, scratch[k], lay, cfg, m, _u(n),
                                      lo == start, last, True, True, one)
                elif cfg[C_PSH] != 0:
                    grad_update_piece(sh, sh, state[k, 0], state[k, 1], scratch[k], lay, cfg,
                                      m, _u(n), lo == start, last, True, False, one)
                else:
                    grad_update_piece(sh, params[k], state[k, 0], state[k, 1], scratch[k],
                                      lay, cfg, m, _u(n), lo == start, last, False, False, one)
            lo += cfg[C_ROWS]
        if sh64[tally + T_STOP] != 0:
            break
        start += cfg[C_BATCH]
    cuda.syncthreads()
    _copy_model(sh, params[k], state[k], lay, cfg, t, T, False)
    if t == _0:
        steps[k, 0] = np.int64(sh64[tally + T_STEP])
        stats[k, 0], stats[k, 1] = sh64[tally + T_COST], sh64[tally + T_SEEN]
        stats[k, 2], stats[k, 3] = sh64[tally + T_STOP], sh64[tally + T_WEIGHT]
