"""The sweep kernel's matrix products (cuda_sweep.py), one layer of a piece of a batch in
shared memory at a time: the forward product, the delta product, and the gradient product
with the optimizer step fused in, the parameters where the plan put them (cuda_sweep_plan).

The three products of a layer are register-blocked the same way (``_dot``): a thread owns
SWEEP_TILE_ROWS output rows (samples of the forward and delta products, units of the
gradient) at one output column, so each value of the column operand read from shared
memory feeds SWEEP_TILE_ROWS multiply-adds; the row operand is read by all lanes of a row
group at one address (a broadcast). Output columns run along the lanes: a warp covers g
columns (g the smallest power of two >= the columns, at most 32) and 32 / g row groups,
so that a 10-unit output layer keeps 20 of 32 lanes busy instead of 10. Warps take tiles
in turn. Rows and columns past the end read a clamped (valid) address and are not stored,
so the inner loop has no branch. Integer division only as 32-bit ``divmod32``, once per tile.
"""
import numpy as np

from fastbp.kernels import scalar
from fastbp.kernels.codes import SOFTMAX
from fastbp.kernels.cuda_config import cuda, jit
from fastbp.kernels.cuda_fused import divmod32, load_step
from fastbp.kernels.cuda_sweep_plan import (  # the layout table and plan slots read here
    C_BIAS, C_CST, C_GBUF, C_LGW, C_NSTATE, C_OPT, C_S0, C_S1, C_SSH, C_WT, LAY_ACT, LAY_B,
    LAY_D, LAY_LDA, LAY_LDD, LAY_LDW, LAY_LG, LAY_LGG, LAY_SA, LAY_SD, LAY_SW, LAY_W, N_CST,
    RA)

device = jit(device=True)
_u, _u32 = np.uint64, np.uint32
_1 = _u(1)
_RA = _u(RA)
_LG_RA = _u(RA.bit_length() - 1)


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
    blockDim.x) threads (a power of two, cfg's C_LGW)."""
    lgw = _u(cfg[C_LGW])
    t = _u(cuda.threadIdx.x)
    return t & ((_1 << lgw) - _1), t >> lgw, _u(cuda.blockDim.x) >> lgw, lgw


@device
def forward_piece(sh, wb, w_row, w_k, w_of, bb, b_of, b_step, lay, cfg, m, n, one):
    """z[m]_si = b_i + sum_j W[m]_ij a[m-1]_sj (the bias first, then j in order: the loop
    kernels' order), a[m]_si = act(z) (softmax: z, applied by the cost phase), for the n
    samples of the piece in sh. W[m]_ij at wb[w_of + i w_row + j w_k], b_i at
    bb[b_of + i b_step]. Tiles: RA * groups samples x g units; units i on the lanes."""
    n_out, n_in, code = _u(lay[m, LAY_D]), _u(lay[m - 1, LAY_D]), lay[m, LAY_ACT]
    a_in, ld_in = _u(lay[m - 1, LAY_SA]), _u(lay[m - 1, LAY_LDA])
    a_out, ld_out = _u(lay[m, LAY_SA]), _u(lay[m, LAY_LDA])
    lane, warp, n_warps, lgw = _lanes(cfg)
    lg, groups, lg_tile, col_blocks, tiles = _grid(n, n_out, _u(lay[m, LAY_LG]), lgw)
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
def delta_piece(sh, wb, w_row, w_k, w_of, lay, cfg, m, n, one):
    """delta[m]_sj = act_m'(a_sj) * sum_i W[m+1]_ij delta[m+1]_si (i in order), with the
    weights of the forward pass, for the n samples of the piece in sh. W[m+1]_ij at
    wb[w_of + i w_row + j w_k]. Tiles: RA * groups samples x g units; units j on the lanes
    (contiguous in W's rows: coalesced where W is in global memory)."""
    n_here, n_next, code = _u(lay[m, LAY_D]), _u(lay[m + 1, LAY_D]), lay[m, LAY_ACT]
    d_next, ld_next = _u(lay[m + 1, LAY_SD]), _u(lay[m + 1, LAY_LDD])
    d_out, ld_d = _u(lay[m, LAY_SD]), _u(lay[m, LAY_LDD])
    a_at, ld_a = _u(lay[m, LAY_SA]), _u(lay[m, LAY_LDA])
    lane, warp, n_warps, lgw = _lanes(cfg)
    lg, groups, lg_tile, col_blocks, tiles = _grid(n, n_here, _u(lay[m, LAY_LG]), lgw)
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
def grad_update_piece(sh, pb, s0b, s1b, scr, lay, cfg, m, n, first, last, psh, ssh, one):
    """gW[m]_ij = sum_s delta[m]_si a[m-1]_sj, gb[m]_i = sum_s delta[m]_si (s in order: the
    column of ones after a[m-1]) over the piece, plus the earlier pieces' sums from the
    gradient buffer in scr; on the batch's last piece the optimizer step
    (scalar.optimizer_step with the constants and scale in sh at cfg's C_CST: a scale of
    0 makes no update), else the sum goes back into the buffer.

    W[m] (and b[m]) in pb, state rows in s0b and s1b: in the padded shared layout where psh
    (ssh), at the offsets cfg gives, else in the flat layout of params (global rows); with
    cfg's C_WT >= 0, W^T in scr follows W. Tiles: RA * groups units i x g inputs j; j on
    the lanes."""
    n_out, n_in = _u(lay[m, LAY_D]), _u(lay[m - 1, LAY_D])
    d_at, ld_d = _u(lay[m, LAY_SD]), _u(lay[m, LAY_LDD])
    a_at, ld_a = _u(lay[m - 1, LAY_SA]), _u(lay[m - 1, LAY_LDA])
    lane, warp, n_warps, lgw = _lanes(cfg)
    lg, groups, lg_tile, col_blocks, tiles = _grid(n_out, n_in + _1, _u(lay[m, LAY_LGG]), lgw)
    rg, col = lane >> lg, lane & ((_1 << lg) - _1)
    prm = _u(cfg[C_CST])
    scale = sh[prm + _u(N_CST - 1)]
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
                flat = _u(lay[m, LAY_W]) + i * n_in + j if j < n_in else _u(lay[m, LAY_B]) + i
                g = acc[a]
                if not first:
                    g += scr[_u(cfg[C_GBUF]) + flat]
                if not last:
                    scr[_u(cfg[C_GBUF]) + flat] = g
                elif update and (j < n_in or cfg[C_BIAS] != 0):
                    padded = _u(lay[m, LAY_SW]) + i * _u(lay[m, LAY_LDW]) + j
                    _step_one(sh, pb, s0b, s1b, scr, cfg, padded if psh else flat,
                              padded if ssh else flat, g, scale, j < n_in,
                              _u(lay[m, LAY_W]) + j * n_out + i, one)
        tile += n_warps


@device
def _step_one(sh, pb, s0b, s1b, scr, cfg, p, q, g, scale, weight, wt_at, one):
    """One parameter's update: pb[p] <- scalar.optimizer_step from the summed gradient g
    (penalized and scaled as loop.update_layer does), its state at s0b[q (+ the shared
    offset of row 0 where the state is in shared memory)] and s1b likewise; the constants
    of the update from sh (cfg's C_CST). A weight also goes to W^T at scr[wt_at] when
    cfg's C_WT >= 0."""
    zero = one - one
    n_state = cfg[C_NSTATE]
    ssh = cfg[C_SSH] != 0
    q0 = q + _u(cfg[C_S0]) if ssh else q
    q1 = q + _u(cfg[C_S1]) if ssh and n_state >= 2 else q
    prm = _u(cfg[C_CST])
    c = load_step(sh[prm:prm + _u(N_CST)])  # what thread 0 wrote for this update
    w = pb[p]
    g = scalar.penalized_gradient(g, w, scale, c.l2) if weight else scale * g
    v0 = s0b[q0] if n_state >= 1 else zero
    v1 = s1b[q1] if n_state >= 2 else zero
    w, v0, v1 = scalar.optimizer_step(cfg[C_OPT], w, g, v0, v1, c, one)
    pb[p] = w
    if n_state >= 1:
        s0b[q0] = v0
    if n_state >= 2:
        s1b[q1] = v1
    if cfg[C_WT] >= 0 and weight:
        scr[_u(cfg[C_WT]) + wt_at] = w
