"""Online SGD on the CPU: one sample at a time, on the flat buffers, in sweeps over the
weights that vectorize across independent outputs.

``train_epoch`` comes here for batch size 1 with ``optimizer="sgd"``. Per sample the work
is small (a few thousand multiply-adds for a 64-32-10 network), so nothing here cuts an
array view: every buffer is indexed through unsigned offsets computed once per call, and
the inputs are read in place from the flat data.

Every number is the one the general batch path (``loop._epoch_batch`` with batches of one
sample) computes -- the same sums in the same order, the same update formula -- only
fewer passes over memory. A sum over the inputs of a unit is one chain of multiply-adds,
so a SIMD loop must put other *units* in its lanes:

- the forward pass z[m]_i = b_i + sum_j W_ij a_j wants the lanes across i, so it reads
  W[m]^T, kept in ``WT`` (n_in, n_out), in sync with W[m];
- the delta d[m-1]_j = sum_i W_ij d_i wants them across j, so it reads W[m] itself.

So each layer m >= 2 keeps both layouts, and each sample sweeps each of them once:

    backward, m = L..2   ``_delta_update_rows``: per row i of W[m], d[m-1] += W_i. d_i
                         with the weights of the forward pass, and the row's update
    forward,  m = 1..L   ``_update_forward_cols``: per row j of W[m]^T the same update,
                         and the next sample's z[m] += W^T_j. a[m-1]_j with the updated
                         weights (the biases updated first)

Layer 1 propagates no delta, so it lives in W^T alone during a call (W[1] is written back
at its end): one sweep over the first layer's weights per sample, usually most of them.
The forward sweep of layer m needs the next sample's a[m-1] and this sample's (for the
update): activations alternate between two buffers. With momentum the velocity is kept in
both layouts the same way.

Offsets: W[m] starts at params[w_off[m]], rows of D[m-1], b[m] right after it; W[m]^T at
WT[w_off[m]], rows of D[m]; a[m] at A[a_off[m]] (+ units for the other buffer) and
delta[m] at Dl[a_off[m]] for m >= 1 (a[0] is read from the data).
"""
import math

import numpy as np
from numba import njit

from fastbp._config import JIT, JIT_NO_NRT
from fastbp.kernels import loop_tiles, scalar, vmath
from fastbp.kernels.codes import SIGMOID, SOFTMAX

_u = np.uint64  # unsigned offsets: no negative-index wraparound, which blocks vectorizing


@njit(**JIT)
def _offsets(sizes):
    """(D, w_off, a_off) as uint64: layer sizes, offsets of W[m] in params and of a[m] in a
    one-sample workspace (a[1] at 0), m = 0..L."""
    L = sizes.shape[0] - 1
    D = np.zeros(L + 1, np.uint64)
    w_off = np.zeros(L + 1, np.uint64)
    a_off = np.zeros(L + 1, np.uint64)
    for m in range(L + 1):
        D[m] = sizes[m]
    for m in range(2, L + 1):
        w_off[m] = w_off[m - 1] + D[m - 1] * (D[m - 2] + _u(1))
        a_off[m] = a_off[m - 1] + D[m - 1]
    return D, w_off, a_off


@njit(**JIT_NO_NRT)
def _sgd(w, v, g, scale, l2, lr, momentum, nesterov, one):
    """One weight's update, as loop._update computes it for a batch: the penalized mean
    gradient scale * g + l2 * w, then scalar.sgd_step; returns (w, v)."""
    return scalar.sgd_step(w, scalar.penalized_gradient(g, w, scale, l2), v, lr, momentum,
                           nesterov, one)


@njit(**JIT_NO_NRT)
def _delta_update_rows(params, V, w, S, s, Dl, o, n_in, n_out, d_prev, scale, lr, momentum,
                       nesterov, l2):
    """Backward sweep of one layer (m >= 2) over W (n_out, n_in) at params[w:] (velocity V
    laid out alike): Dl[d_prev + j] = sum_i W_ij delta_i, i in order, with the weights of
    the forward pass (each read before its update), and W_ij updated from the gradient
    delta_i S[s + j]. delta at Dl[o:]; biases are left to _update_forward_cols."""
    one = params.dtype.type(1)
    with_v = momentum != one - one
    for j in range(n_in):
        Dl[d_prev + j] = 0
    if not with_v and l2 == one - one and scale == one:
        # Plain SGD, what _sgd computes when scale * g + 0 * w is g: the register sweep,
        # a block of inputs j at a time.
        step = _u(loop_tiles.sweep_lanes(params.itemsize))
        for j0 in range(_u(0), n_in, step):
            loop_tiles.sweep_rows(params, w + j0, n_in, n_out, min(step, n_in - j0), Dl, o, S,
                                  s + j0, -lr, d_prev + j0)
        return
    for i in range(n_out):
        r = w + i * n_in
        d = Dl[o + i]
        if with_v:
            for j in range(n_in):
                wt = params[r + j]
                Dl[d_prev + j] = vmath.madd(wt, d, Dl[d_prev + j])
                params[r + j], V[r + j] = _sgd(wt, V[r + j], d * S[s + j], scale, l2, lr,
                                               momentum, nesterov, one)
        else:
            for j in range(n_in):
                wt = params[r + j]
                Dl[d_prev + j] = vmath.madd(wt, d, Dl[d_prev + j])
                params[r + j] = _sgd(wt, wt, d * S[s + j], scale, l2, lr, momentum, nesterov,
                                     one)[0]


@njit(**JIT_NO_NRT)
def _update_forward_cols(params, WT, VT, V, w, S, s, Dl, o, n_in, n_out, scale, lr, momentum,
                         nesterov, l2, use_bias, update, forward, S_next, s_next, A, z):
    """Forward sweep of one layer over W^T (n_in, n_out) at WT[w:] (velocity VT alike): if
    update, W^T_ji from the gradient delta_i S[s + j] and the biases (params[w + n_out
    n_in:], velocity in V) from delta_i, delta at Dl[o:]; then, if forward, the next
    sample's A[z + i] = b_i + sum_j W^T_ji S_next[s_next + j], j in order, with the updated
    weights."""
    one = params.dtype.type(1)
    with_v = momentum != one - one
    b = w + n_out * n_in
    if update and use_bias:  # as loop._update: biases take scale * g, unpenalized
        for i in range(n_out):
            params[b + i], V[b + i] = scalar.sgd_step(params[b + i], scale * Dl[o + i],
                                                      V[b + i], lr, momentum, nesterov, one)
    if forward:
        for i in range(n_out):
            A[z + i] = params[b + i]
    if (not update or (not with_v and l2 == one - one and scale == one)) and forward:
        # Plain SGD (as in _delta_update_rows), or no update: the register sweeps, a block
        # of outputs i at a time.
        step = _u(loop_tiles.sweep_lanes(params.itemsize))
        for i0 in range(_u(0), n_out, step):
            width = min(step, n_out - i0)
            if update:
                loop_tiles.sweep_update_forward(WT, w + i0, n_out, n_in, width, Dl, o + i0, S,
                                                s, -lr, S_next, s_next, A, z + i0)
            else:
                loop_tiles.sweep_forward(WT, w + i0, n_out, n_in, width, Dl, o + i0, S, s,
                                         -lr, S_next, s_next, A, z + i0)
        return
    if update and not forward and not with_v and l2 == one - one and scale == one:
        step = _u(loop_tiles.sweep_lanes(params.itemsize))
        for i0 in range(_u(0), n_out, step):
            loop_tiles.sweep_update(WT, w + i0, n_out, n_in, min(step, n_out - i0), Dl, o + i0,
                                    S, s, -lr, S_next, s_next, A, z + i0)
        return
    for j in range(n_in):
        r = w + j * n_out
        x = S[s + j]
        if update and with_v:
            for i in range(n_out):
                WT[r + i], VT[r + i] = _sgd(WT[r + i], VT[r + i], Dl[o + i] * x, scale, l2, lr,
                                            momentum, nesterov, one)
        elif update:
            for i in range(n_out):
                wt = WT[r + i]
                WT[r + i] = _sgd(wt, wt, Dl[o + i] * x, scale, l2, lr, momentum, nesterov,
                                 one)[0]
        if forward:
            xn = S_next[s_next + j]
            for i in range(n_out):
                A[z + i] = vmath.madd(WT[r + i], xn, A[z + i])


@njit(**JIT_NO_NRT)
def _forward_rest(params, WT, A, a_off, D, w_off, acts, buf, one):
    """Layers 2..L of a sample whose z[1] is in buffer ``buf`` (activated here too)."""
    L = D.shape[0] - 1
    scalar.activate_row(A, buf + a_off[1], D[1], acts[0], one)
    for m in range(2, L + 1):
        _update_forward_cols(params, WT, WT, params, w_off[m], A, buf, A, _u(0), D[m - 1],
                             D[m], one, one, one - one, False, one - one, False, False, True,
                             A, buf + a_off[m - 1], A, buf + a_off[m])
        scalar.activate_row(A, buf + a_off[m], D[m], acts[m - 1], one)


@njit(**JIT)
def online_buffers(params, sizes):
    """The work buffers of fused_online_epoch, made once for any number of its calls on
    networks of these sizes and dtype: (A, WT, VT, D, w_off, a_off). A holds two samples'
    activations, alternating; WT and VT W^T of every layer and of the velocity, kept in
    sync with W while a call runs (W[1] itself is written back at its end); D, w_off and
    a_off as _offsets gives them. Every call sets them up again before use."""
    D, w_off, a_off = _offsets(sizes)
    L = sizes.shape[0] - 1
    A = np.empty(2 * (a_off[L] + D[L]), params.dtype)
    return A, np.empty_like(params), np.empty_like(params), D, w_off, a_off


@njit(**JIT)
def fused_online_epoch(params, velocity, Dl, X, Y, SW, order, sizes, acts, loss, lr,
                       momentum, nesterov, l2, use_bias, stats, buffers):
    """train_epoch for batch size 1 and SGD, bit for bit what the batch path computes for
    batches of one sample (module docstring). Arguments as train_epoch's; Dl needs sum(D)
    elements; stats as train_epoch's; buffers from online_buffers. A sample of weight w
    scales its output delta by w and its update by 1 / w, as a batch of one does; a weight
    of 0 makes no update. Returns the number of updates made."""
    if order.shape[0] == 0:
        return 0
    A, WT, VT, D, w_off, a_off = buffers
    return _online(params, velocity, Dl, X.reshape(X.size), Y, SW, order, acts, loss, lr,
                   momentum, nesterov, l2, use_bias, stats, A, WT, VT, D, w_off, a_off)


@njit(**JIT_NO_NRT)
def _online(params, velocity, Dl, X_flat, Y, SW, order, acts, loss, lr, momentum, nesterov,
            l2, use_bias, stats, A, WT, VT, D, w_off, a_off):
    """fused_online_epoch's work on the buffers of online_buffers: compiled without reference
    counting (nothing here allocates), which would otherwise cost atomic increments and
    decrements of the arrays passed to each step, per sample."""
    one = params.dtype.type(1)
    L = D.shape[0] - 1
    units = a_off[L] + D[L]  # one sample's activations; the second buffer follows
    D0, DL, oL = D[0], D[L], a_off[L]
    code_out = acts[L - 1]
    binary = code_out == SIGMOID
    weighted = SW.shape[0] > 0
    with_v = momentum != one - one
    n = order.shape[0]
    updates = 0
    for m in range(1, L + 1):
        loop_tiles.transpose(WT, w_off[m], params, w_off[m], D[m], D[m - 1])
        if with_v:
            loop_tiles.transpose(VT, w_off[m], velocity, w_off[m], D[m], D[m - 1])
    # The first sample's forward pass; later ones come from the previous sample's sweeps.
    cur = _u(0)
    _update_forward_cols(params, WT, WT, params, w_off[1], X_flat, _u(0), Dl, _u(0), D0, D[1],
                         one, one, one - one, False, one - one, False, False, True,
                         X_flat, _u(order[0]) * D0, A, cur + a_off[1])
    _forward_rest(params, WT, A, a_off, D, w_off, acts, cur, one)
    for k in range(n):
        r = order[k]
        nxt = units - cur
        cost = scalar.row_cost(A, cur + oL, Y, r, DL, binary, loss)
        if not math.isfinite(cost):
            stats[2] = 1.0
            break
        weight = SW[r] if weighted else 1.0
        stats[0] += cost * weight
        stats[1] += 1
        stats[3] += weight
        has_next = k + 1 < n
        xs_next = _u(order[k + 1]) * D0 if has_next else _u(0)
        update = weight > 0
        scale = one / params.dtype.type(weight) if update else one
        if update:
            updates += 1
            if code_out == SOFTMAX:
                scalar.output_delta_row(Dl, oL, A, cur + oL, Y, r, DL, code_out, loss, one)
            else:  # its elementwise case, inlined (see loop.output_delta)
                for i in range(DL):
                    Dl[oL + i] = scalar.output_delta_term(A[cur + oL + i], Y[r, i], code_out,
                                                          loss, one)
            if weighted:
                for i in range(DL):
                    Dl[oL + i] *= SW[r]
            for m in range(L, 1, -1):
                _delta_update_rows(params, velocity, w_off[m], A, cur + a_off[m - 1], Dl,
                                   a_off[m], D[m - 1], D[m], a_off[m - 1], scale, lr,
                                   momentum, nesterov, l2)
                scalar.times_derivative(Dl, a_off[m - 1], A, cur + a_off[m - 1], D[m - 1],
                                        acts[m - 2], one)
        # Layer by layer: this sample's update of W^T (and the biases), fused with the next
        # sample's forward pass.
        _update_forward_cols(params, WT, VT, velocity, w_off[1], X_flat, _u(r) * D0, Dl,
                             a_off[1], D0, D[1], scale, lr, momentum, nesterov, l2, use_bias,
                             update, has_next, X_flat, xs_next, A, nxt + a_off[1])
        if has_next:
            scalar.activate_row(A, nxt + a_off[1], D[1], acts[0], one)
        for m in range(2, L + 1):
            _update_forward_cols(params, WT, VT, velocity, w_off[m], A, cur + a_off[m - 1],
                                 Dl, a_off[m], D[m - 1], D[m], scale, lr, momentum, nesterov,
                                 l2, use_bias, update, has_next, A, nxt + a_off[m - 1], A,
                                 nxt + a_off[m])
            if has_next:
                scalar.activate_row(A, nxt + a_off[m], D[m], acts[m - 1], one)
        cur = nxt
    # W[1] (and its velocity) lived in W^T during the call.
    loop_tiles.transpose(params, w_off[1], WT, w_off[1], D0, D[1])
    if with_v:
        loop_tiles.transpose(velocity, w_off[1], VT, w_off[1], D0, D[1])
    return updates
