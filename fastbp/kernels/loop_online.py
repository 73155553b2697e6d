"""Online SGD on the CPU: one sample at a time, on the flat buffers.

``train_epoch`` comes here for batch size 1 with ``optimizer="sgd"``. Per sample the work
is small (a few thousand multiply-adds for a 64-32-10 network), so these kernels index
the flat buffers through offsets computed once per epoch instead of cutting array views
(a view costs about 45 ns of slicing and reference counting), and each layer's backward
pass is fused with its update: per row i of W[m], one sweep over j propagates the delta
to layer m-1 (with the weights of the forward pass) and updates the row. There is no
gradient buffer and one pass over the parameters instead of four.

Offsets: W[m] starts at params[w_off[m]], rows of D[m-1], with b[m] right after it;
a[m] starts at A[a_off[m]] in a one-sample workspace, and delta[m] at Dl[a_off[m]].
"""
import math

import numpy as np
from numba import njit

from fastbp._config import JIT
from fastbp.kernels import scalar
from fastbp.kernels.codes import SIGMOID


@njit(**JIT)
def _u(x):
    # Unsigned offsets: Numba then skips the negative-index wraparound check, which would
    # keep these loops from vectorizing.
    return np.uint64(x)


@njit(**JIT)
def _offsets(sizes):
    """Offsets of W[m] in params and of a[m] in a one-sample workspace, m = 0..L."""
    L = sizes.shape[0] - 1
    w_off = np.zeros(L + 1, np.int64)
    a_off = np.zeros(L + 1, np.int64)
    for m in range(1, L + 1):
        a_off[m] = a_off[m - 1] + sizes[m - 1]
        if m < L:
            w_off[m + 1] = w_off[m] + sizes[m] * (sizes[m - 1] + 1)
    return w_off, a_off


@njit(**JIT)
def _forward_sample(A, params, w_off, in_off, out_off, n_in, n_out, code, one):
    """a[m]_i = act(sum_j W[m]_ij * a[m-1]_j + b[m]_i) for one sample: the equation of
    loop_layers._forward_layer_plain with n = 1, rows in blocks of 4 as in _forward_layer.
    W[m] at params[w_off:], a[m-1] at A[in_off:], a[m] at A[out_off:]."""
    w, a_in, a_out, n_in_u, n_out_u = _u(w_off), _u(in_off), _u(out_off), _u(n_in), _u(n_out)
    b = w + n_out_u * n_in_u
    full = n_out_u - n_out_u % _u(4)
    for i in range(_u(0), full, _u(4)):
        r0, r1, r2, r3 = (w + i * n_in_u, w + (i + _u(1)) * n_in_u, w + (i + _u(2)) * n_in_u,
                          w + (i + _u(3)) * n_in_u)
        z0, z1, z2, z3 = params[b + i], params[b + i + _u(1)], params[b + i + _u(2)], params[b + i + _u(3)]
        for j in range(n_in_u):  # contiguous in W and a
            x = A[a_in + j]
            z0 += params[r0 + j] * x
            z1 += params[r1 + j] * x
            z2 += params[r2 + j] * x
            z3 += params[r3 + j] * x
        A[a_out + i], A[a_out + i + _u(1)], A[a_out + i + _u(2)], A[a_out + i + _u(3)] = z0, z1, z2, z3
    for i in range(full, n_out_u):
        acc = params[b + i]
        row = w + i * n_in_u
        for j in range(n_in_u):
            acc += params[row + j] * A[a_in + j]
        A[a_out + i] = acc
    scalar.activate_row(A, out_off, n_out, code, one)


@njit(**JIT)
def _fused_delta_update_sample(params, velocity, Dl, A, w_off, in_off, out_off, n_in, n_out,
                               lr, momentum, nesterov, l2, use_bias, propagate):
    """One sample, one layer m, backward pass fused with the SGD update:

        delta[m-1]_j = sum_i W_ij * delta[m]_i      (if propagate; weights of the forward
                                                     pass, read before their update)
        W_ij <- sgd_step(W_ij, delta[m]_i * a[m-1]_j + l2 * W_ij),  b_i <- sgd_step(b_i, delta[m]_i)

    the arithmetic of ``loop.update`` with scale 1. delta[m-1] is left without the
    activation derivative. Offsets as in _forward_sample (Dl laid out like A).
    """
    w, a_in, a_out, n_in_u, n_out_u = _u(w_off), _u(in_off), _u(out_off), _u(n_in), _u(n_out)
    one = params.dtype.type(1)
    b = w + n_out_u * n_in_u
    if propagate:
        Dl[a_in:a_in + n_in_u] = 0
    plain = momentum == 0  # sgd_step without momentum: w - lr * g, written out to vectorize
    start = _u(0)
    if plain and propagate:
        # Rows in blocks of 4: one load and store of delta[m-1]_j per four weights.
        start = n_out_u - n_out_u % _u(4)
        for i in range(_u(0), start, _u(4)):
            d0, d1, d2, d3 = Dl[a_out + i], Dl[a_out + i + _u(1)], Dl[a_out + i + _u(2)], Dl[a_out + i + _u(3)]
            r0, r1, r2, r3 = (w + i * n_in_u, w + (i + _u(1)) * n_in_u, w + (i + _u(2)) * n_in_u,
                              w + (i + _u(3)) * n_in_u)
            for j in range(n_in_u):  # contiguous in W, a[m-1], delta[m-1]
                w0, w1, w2, w3 = params[r0 + j], params[r1 + j], params[r2 + j], params[r3 + j]
                Dl[a_in + j] += w0 * d0 + w1 * d1 + w2 * d2 + w3 * d3
                x = A[a_in + j]
                params[r0 + j] = w0 - lr * scalar.penalized_gradient(d0 * x, w0, one, l2)
                params[r1 + j] = w1 - lr * scalar.penalized_gradient(d1 * x, w1, one, l2)
                params[r2 + j] = w2 - lr * scalar.penalized_gradient(d2 * x, w2, one, l2)
                params[r3 + j] = w3 - lr * scalar.penalized_gradient(d3 * x, w3, one, l2)
            if use_bias:
                for k in range(i, i + _u(4)):
                    params[b + k] -= lr * Dl[a_out + k]
    for i in range(start, n_out_u):
        di = Dl[a_out + i]
        row = w + i * n_in_u
        if plain:
            for j in range(n_in_u):
                wt = params[row + j]
                if propagate:
                    Dl[a_in + j] += wt * di
                params[row + j] = wt - lr * scalar.penalized_gradient(di * A[a_in + j], wt, one, l2)
            if use_bias:
                params[b + i] -= lr * di
        else:
            for j in range(n_in_u):
                wt = params[row + j]
                if propagate:
                    Dl[a_in + j] += wt * di
                params[row + j], velocity[row + j] = scalar.sgd_step(
                    wt, scalar.penalized_gradient(di * A[a_in + j], wt, one, l2),
                    velocity[row + j], lr, momentum, nesterov, one)
            if use_bias:
                params[b + i], velocity[b + i] = scalar.sgd_step(
                    params[b + i], di, velocity[b + i], lr, momentum, nesterov, one)


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
    w_off, a_off = _offsets(sizes)
    n_out, code_out = sizes[L], acts[L - 1]
    binary = code_out == SIGMOID
    updates = 0
    for k in range(order.shape[0]):
        r = order[k]
        for j in range(sizes[0]):
            A[j] = X[r, j]
        for m in range(1, L + 1):
            _forward_sample(A, params, w_off[m], a_off[m - 1], a_off[m], sizes[m - 1],
                            sizes[m], acts[m - 1], one)
        c = scalar.row_cost(A, a_off[L], Y, r, n_out, binary, loss)
        if not math.isfinite(c):
            stats[2] = 1.0
            return updates
        w = SW[r] if SW.shape[0] else 1.0
        stats[0] += c * w
        stats[1] += 1
        stats[3] += w
        if w == 0:
            continue
        updates += 1
        scalar.output_delta_row(Dl, a_off[L], A, a_off[L], Y, r, n_out, code_out, loss, one)
        for m in range(L, 0, -1):
            _fused_delta_update_sample(params, velocity, Dl, A, w_off[m], a_off[m - 1],
                                       a_off[m], sizes[m - 1], sizes[m], lr, momentum,
                                       nesterov, l2, use_bias, m > 1)
            if m > 1:
                for j in range(a_off[m - 1], a_off[m]):
                    Dl[j] *= scalar.derivative(acts[m - 2], A[j], one)
    return updates
