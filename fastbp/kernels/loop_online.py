"""Online SGD on the CPU: one sample at a time, on the flat buffers.

``train_epoch`` comes here for batch size 1 with ``optimizer="sgd"``. Per sample the work
is small (a few thousand multiply-adds for a 64-32-10 network), so nothing here cuts an
array view (a view costs about 45 ns of slicing and reference counting): every buffer is
indexed through unsigned offsets computed once per epoch, and the inputs are read in
place from the flat data. Each layer's backward pass is fused with its update: per row i
of W[m], one sweep over j propagates the delta to layer m-1 (with the weights of the
forward pass, read before they change) and updates the row. Layer 1 goes further: its
update is fused with the next sample's layer-1 forward pass, which needs the updated
weights anyway, so W[1] -- most of the weights of a wide-input network -- is swept once
per sample instead of twice. The arithmetic is that of the sequential algorithm.

Why one row per loop in the update sweeps: a loop that stores into four rows of params
needs more run-time alias checks than LLVM allows, and stays scalar (a 784 x 128 update:
29 us with four rows, 8 us with one). The forward sweep only reads params and keeps
four rows per loop. Rows shorter than 16 do not vectorize anyway; there four rows per
loop are faster.

Offsets: W[m] starts at params[w_off[m]], rows of D[m-1], b[m] right after it; a[m] at
A[a_off[m]] and delta[m] at Dl[a_off[m]] for m >= 1 (a[0] is read from the data).
"""
import math

import numpy as np
from numba import njit

from fastbp._config import JIT
from fastbp.kernels import scalar
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


@njit(**JIT)
def _forward_sample(params, w, S, s, A, o, n_in, n_out):
    """z_i = b_i + sum_j W_ij S[s + j] into A[o + i], one sample: the equation of
    loop_layers._forward_layer_plain with n = 1 (the activation follows separately). W at
    params[w:], b right after it. Rows in blocks of 4, read-only: it vectorizes."""
    b = w + n_out * n_in
    full = n_out - n_out % _u(4)
    for i in range(_u(0), full, _u(4)):
        r0 = w + i * n_in
        r1, r2, r3 = r0 + n_in, r0 + _u(2) * n_in, r0 + _u(3) * n_in
        z0, z1, z2, z3 = params[b + i], params[b + i + _u(1)], params[b + i + _u(2)], params[b + i + _u(3)]
        for j in range(n_in):  # contiguous in W and S
            x = S[s + j]
            z0 += params[r0 + j] * x
            z1 += params[r1 + j] * x
            z2 += params[r2 + j] * x
            z3 += params[r3 + j] * x
        A[o + i], A[o + i + _u(1)], A[o + i + _u(2)], A[o + i + _u(3)] = z0, z1, z2, z3
    for i in range(full, n_out):
        acc = params[b + i]
        r = w + i * n_in
        for j in range(n_in):
            acc += params[r + j] * S[s + j]
        A[o + i] = acc


@njit(**JIT)
def _fused_delta_update(params, w, S, s, Dl, o, n_in, n_out, d_prev, lr, c, use_bias,
                        propagate):
    """One layer, one sample, plain SGD: if propagate, Dl[d_prev + j] = sum_i W_ij delta_i
    (forward-pass weights), then W_ij <- scalar.sgd_decay_step(W_ij, c, -lr delta_i,
    S[s + j]) and b_i <- b_i - lr delta_i. delta at Dl[o:], the layer's input at S[s:]."""
    b = w + n_out * n_in
    if propagate:
        for j in range(n_in):
            Dl[d_prev + j] = 0
    full = n_out - n_out % _u(4) if n_in < _u(16) else _u(0)  # 4 rows per loop: short rows only
    for i in range(_u(0), full, _u(4)):
        r0 = w + i * n_in
        r1, r2, r3 = r0 + n_in, r0 + _u(2) * n_in, r0 + _u(3) * n_in
        d0, d1, d2, d3 = Dl[o + i], Dl[o + i + _u(1)], Dl[o + i + _u(2)], Dl[o + i + _u(3)]
        e0, e1, e2, e3 = -lr * d0, -lr * d1, -lr * d2, -lr * d3
        for j in range(n_in):
            w0, w1, w2, w3 = params[r0 + j], params[r1 + j], params[r2 + j], params[r3 + j]
            if propagate:
                Dl[d_prev + j] += w0 * d0 + w1 * d1 + w2 * d2 + w3 * d3
            x = S[s + j]
            params[r0 + j] = scalar.sgd_decay_step(w0, c, e0, x)
            params[r1 + j] = scalar.sgd_decay_step(w1, c, e1, x)
            params[r2 + j] = scalar.sgd_decay_step(w2, c, e2, x)
            params[r3 + j] = scalar.sgd_decay_step(w3, c, e3, x)
        if use_bias:
            params[b + i] += e0
            params[b + i + _u(1)] += e1
            params[b + i + _u(2)] += e2
            params[b + i + _u(3)] += e3
    for i in range(full, n_out):
        r = w + i * n_in
        d = Dl[o + i]
        e = -lr * d
        if propagate:
            for j in range(n_in):
                wt = params[r + j]
                Dl[d_prev + j] += wt * d
                params[r + j] = scalar.sgd_decay_step(wt, c, e, S[s + j])
        else:
            for j in range(n_in):
                params[r + j] = scalar.sgd_decay_step(params[r + j], c, e, S[s + j])
        if use_bias:
            params[b + i] += e


@njit(**JIT)
def _fused_update_forward(params, w, S, s, s_next, Dl, A, o, n_in, n_out, lr, c, use_bias):
    """Layer 1: the plain-SGD update of _fused_delta_update for the sample at S[s:], and in
    the same sweep the next sample's z[1] = b + W S[s_next:] with the updated W and b,
    into A[o:]."""
    b = w + n_out * n_in
    full = n_out - n_out % _u(4) if n_in < _u(16) else _u(0)
    for i in range(_u(0), full, _u(4)):
        r0 = w + i * n_in
        r1, r2, r3 = r0 + n_in, r0 + _u(2) * n_in, r0 + _u(3) * n_in
        e0, e1 = -lr * Dl[o + i], -lr * Dl[o + i + _u(1)]
        e2, e3 = -lr * Dl[o + i + _u(2)], -lr * Dl[o + i + _u(3)]
        if use_bias:
            params[b + i] += e0
            params[b + i + _u(1)] += e1
            params[b + i + _u(2)] += e2
            params[b + i + _u(3)] += e3
        z0, z1, z2, z3 = params[b + i], params[b + i + _u(1)], params[b + i + _u(2)], params[b + i + _u(3)]
        for j in range(n_in):
            x, x_next = S[s + j], S[s_next + j]
            w0 = scalar.sgd_decay_step(params[r0 + j], c, e0, x)
            w1 = scalar.sgd_decay_step(params[r1 + j], c, e1, x)
            w2 = scalar.sgd_decay_step(params[r2 + j], c, e2, x)
            w3 = scalar.sgd_decay_step(params[r3 + j], c, e3, x)
            params[r0 + j], params[r1 + j], params[r2 + j], params[r3 + j] = w0, w1, w2, w3
            z0 += w0 * x_next
            z1 += w1 * x_next
            z2 += w2 * x_next
            z3 += w3 * x_next
        A[o + i], A[o + i + _u(1)], A[o + i + _u(2)], A[o + i + _u(3)] = z0, z1, z2, z3
    for i in range(full, n_out):
        r = w + i * n_in
        e = -lr * Dl[o + i]
        if use_bias:
            params[b + i] += e
        z = params[b + i]
        for j in range(n_in):
            wt = scalar.sgd_decay_step(params[r + j], c, e, S[s + j])
            params[r + j] = wt
            z += wt * S[s_next + j]
        A[o + i] = z


@njit(**JIT)
def _fused_delta_update_momentum(params, velocity, w, S, s, Dl, o, n_in, n_out, d_prev, lr,
                                 momentum, nesterov, l2, use_bias, propagate):
    """_fused_delta_update with momentum: each weight through scalar.sgd_step from its
    penalized gradient delta_i S[s + j] + l2 W_ij, velocity laid out like params."""
    one = params.dtype.type(1)
    b = w + n_out * n_in
    if propagate:
        for j in range(n_in):
            Dl[d_prev + j] = 0
    for i in range(n_out):
        r = w + i * n_in
        d = Dl[o + i]
        for j in range(n_in):
            wt = params[r + j]
            if propagate:
                Dl[d_prev + j] += wt * d
            params[r + j], velocity[r + j] = scalar.sgd_step(
                wt, scalar.penalized_gradient(d * S[s + j], wt, one, l2), velocity[r + j], lr,
                momentum, nesterov, one)
        if use_bias:
            params[b + i], velocity[b + i] = scalar.sgd_step(
                params[b + i], d, velocity[b + i], lr, momentum, nesterov, one)


@njit(**JIT)
def fused_online_epoch(params, velocity, A, Dl, X, Y, SW, order, sizes, acts, loss, lr,
                       momentum, nesterov, l2, use_bias, stats):
    """train_epoch for batch size 1 and SGD: per sample, forward, cost, output delta, then
    per layer from L down the fused backward pass and update. Arguments as train_epoch's;
    A and Dl need sum(D) elements; stats as train_epoch's. A sample's weight w scales its
    cost; its update is the mean gradient of a batch of one, w g / w = g, and none at w = 0.
    Returns the number of updates made."""
    one = params.dtype.type(1)
    L = sizes.shape[0] - 1
    D, w_off, a_off = _offsets(sizes)
    D0, DL, oL = D[0], D[L], a_off[L]
    code_out = acts[L - 1]
    binary = code_out == SIGMOID
    X_flat = X.reshape(X.size)  # the data in place: a[0] of sample r at X_flat[r * D0:]
    plain = momentum == 0
    c = one - lr * l2  # plain SGD: w <- w c - lr delta x
    n = order.shape[0]
    updates = 0
    if n == 0:
        return updates
    _forward_sample(params, w_off[1], X_flat, _u(order[0]) * D0, A, a_off[1], D0, D[1])
    for k in range(n):
        r = order[k]
        xs = _u(r) * D0
        # z[1] of this sample is in A already: from the sweep that updated layer 1.
        scalar.activate_row(A, a_off[1], D[1], acts[0], one)
        for m in range(2, L + 1):
            _forward_sample(params, w_off[m], A, a_off[m - 1], A, a_off[m], D[m - 1], D[m])
            scalar.activate_row(A, a_off[m], D[m], acts[m - 1], one)
        cost = scalar.row_cost(A, oL, Y, r, DL, binary, loss)
        if not math.isfinite(cost):
            stats[2] = 1.0
            return updates
        weight = SW[r] if SW.shape[0] else 1.0
        stats[0] += cost * weight
        stats[1] += 1
        stats[3] += weight
        has_next = k + 1 < n
        xs_next = _u(order[k + 1]) * D0 if has_next else _u(0)
        if weight == 0:
            if has_next:
                _forward_sample(params, w_off[1], X_flat, xs_next, A, a_off[1], D0, D[1])
            continue
        updates += 1
        if code_out == SOFTMAX:
            scalar.output_delta_row(Dl, oL, A, oL, Y, r, DL, code_out, loss, one)
        else:  # its elementwise case, inlined (see loop.output_delta)
            for i in range(DL):
                Dl[oL + i] = scalar.output_delta_term(A[oL + i], Y[r, i], code_out, loss, one)
        for m in range(L, 0, -1):
            below = m > 1  # layer m's input: a[m-1] in A, or the sample itself for m = 1
            S, s = (A, a_off[m - 1]) if below else (X_flat, xs)
            if not plain:
                _fused_delta_update_momentum(params, velocity, w_off[m], S, s, Dl, a_off[m],
                                             D[m - 1], D[m], a_off[m - 1], lr, momentum,
                                             nesterov, l2, use_bias, below)
            elif below:
                _fused_delta_update(params, w_off[m], S, s, Dl, a_off[m], D[m - 1], D[m],
                                    a_off[m - 1], lr, c, use_bias, True)
            elif has_next:
                _fused_update_forward(params, w_off[1], X_flat, xs, xs_next, Dl, A, a_off[1],
                                      D0, D[1], lr, c, use_bias)
            else:
                _fused_delta_update(params, w_off[1], X_flat, xs, Dl, a_off[1], D0, D[1],
                                    _u(0), lr, c, use_bias, False)
            if below:
                scalar.derivative_row(Dl, A, a_off[m - 1], D[m - 1], acts[m - 2], one)
        if not plain and has_next:
            _forward_sample(params, w_off[1], X_flat, xs_next, A, a_off[1], D0, D[1])
    return updates
