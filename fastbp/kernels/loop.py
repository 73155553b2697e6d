"""Numba CPU loop kernels: the equations of backpropagation written as loops.

Array layouts are described in ``fastbp.kernels``. Every kernel works for any depth
with one compiled specialization per dtype: the shape travels in ``sizes``, the
choices in integer codes. Inner loops run over the contiguous index (the input index
j of ``W[m]_ij`` and of a sample's activation row), so they vectorize.
"""
import math

import numpy as np
from numba import njit

from fastbp._config import JIT
from fastbp.kernels import scalar
from fastbp.kernels._host import empty, to_device, to_host  # noqa: F401  (backend contract)
from fastbp.kernels.codes import CROSS_ENTROPY, SIGMOID, SOFTMAX

_activate = njit(**JIT)(scalar.activate)
_derivative = njit(**JIT)(scalar.derivative)
_log = njit(**JIT)(scalar.log_clamped)


@njit(**JIT)
def _param_offset(sizes, m):
    """Offset of W[m] in params; b[m] follows it."""
    off = 0
    for k in range(1, m):
        off += sizes[k] * (sizes[k - 1] + 1)
    return off


@njit(**JIT)
def _unit_offset(sizes, m, n):
    """Offset of block m (n, D[m]) in a layer-major workspace for n samples."""
    off = 0
    for k in range(m):
        off += sizes[k]
    return n * off


@njit(**JIT)
def _layer(params, sizes, m):
    """Views W[m] (D[m], D[m-1]) and b[m] (D[m],) of params (or of grad)."""
    p = _param_offset(sizes, m)
    n_out, n_in = sizes[m], sizes[m - 1]
    W = params[p:p + n_out * n_in].reshape((n_out, n_in))
    b = params[p + n_out * n_in:p + n_out * (n_in + 1)]
    return W, b


@njit(**JIT)
def _block(A, sizes, m, n):
    """View of block m, (n, D[m]), of a layer-major workspace."""
    off = _unit_offset(sizes, m, n)
    return A[off:off + n * sizes[m]].reshape((n, sizes[m]))


@njit(**JIT)
def _softmax_row(z, one):
    """a = exp(z - max z) / sum exp(z - max z), in place on one sample's row."""
    top = z[0]
    for i in range(1, z.shape[0]):
        top = max(top, z[i])
    total = one - one
    for i in range(z.shape[0]):
        z[i] = math.exp(z[i] - top)
        total += z[i]
    inv = one / total
    for i in range(z.shape[0]):
        z[i] *= inv


@njit(**JIT)
def forward(A, params, n, sizes, acts):
    """z[m]_i = sum_j W[m]_ij * a[m-1]_j + b[m]_i,  a[m] = act_m(z[m]),  m = 1..L.

    A       (>= n * sum(D),)  block 0 holds the inputs; blocks 1..L overwritten
    params  (P,)              weights and biases
    """
    one = params.dtype.type(1)
    for m in range(1, sizes.shape[0]):
        W, b = _layer(params, sizes, m)
        a_in = _block(A, sizes, m - 1, n)
        a_out = _block(A, sizes, m, n)
        code = acts[m - 1]
        for s in range(n):
            for i in range(W.shape[0]):
                acc = b[i]
                for j in range(W.shape[1]):  # contiguous in W[m] and in a[m-1]
                    acc += W[i, j] * a_in[s, j]
                a_out[s, i] = acc
            if code == SOFTMAX:
                _softmax_row(a_out[s], one)
            else:
                for i in range(W.shape[0]):
                    a_out[s, i] = _activate(code, a_out[s, i], one)


@njit(**JIT)
def sample_costs(cost, A, Y, n, sizes, acts, loss):
    """cost_s = C(a[L], y) per sample: 0.5 * sum (y - a)^2, or the cross-entropy.

    cost  (>= n,) float64  out, overwritten
    A     (>= n * sum(D),) after ``forward``
    Y     (n, D[L])        targets
    """
    L = sizes.shape[0] - 1
    a = _block(A, sizes, L, n)
    binary = acts[L - 1] == SIGMOID
    for s in range(n):
        c = 0.0
        for i in range(a.shape[1]):
            y = float(Y[s, i])
            p = float(a[s, i])
            if loss == CROSS_ENTROPY:
                if y != 0.0:
                    c -= y * _log(p)
                if binary and y != 1.0:
                    c -= (1.0 - y) * _log(1.0 - p)
            else:
                c += 0.5 * (y - p) * (y - p)
        cost[s] = c


@njit(**JIT)
def output_delta(Dl, A, Y, n, sizes, acts, loss):
    """delta[L] = dC/da[L] (*) act_L'(z[L]); a[L] - y for softmax or sigmoid + cross-entropy.

    (Softmax + cross-entropy uses a[L] * sum(y) - y, which is a[L] - y for targets that
    sum to 1, such as one-hot labels, and stays exact for targets that do not.)

    Dl  (>= n * sum(D),)  block L overwritten
    A   (>= n * sum(D),)  after ``forward``
    Y   (n, D[L])         targets
    """
    one = A.dtype.type(1)
    L = sizes.shape[0] - 1
    a = _block(A, sizes, L, n)
    d = _block(Dl, sizes, L, n)
    code = acts[L - 1]
    for s in range(n):
        if loss == CROSS_ENTROPY and code == SOFTMAX:
            # a_i * sum_k y_k - y_i: the exact gradient, a - y when the row sums to 1.
            total = one - one
            for i in range(a.shape[1]):
                total += Y[s, i]
            for i in range(a.shape[1]):
                d[s, i] = a[s, i] * total - Y[s, i]
            continue
        for i in range(a.shape[1]):
            d[s, i] = a[s, i] - Y[s, i]
        if loss == CROSS_ENTROPY:
            continue  # sigmoid + binary cross-entropy: a - y exactly
        if code == SOFTMAX:
            # Softmax Jacobian: delta_i = a_i * (g_i - sum_k g_k a_k), g = a - y.
            dot = one - one
            for i in range(a.shape[1]):
                dot += d[s, i] * a[s, i]
            for i in range(a.shape[1]):
                d[s, i] = a[s, i] * (d[s, i] - dot)
        else:
            for i in range(a.shape[1]):
                d[s, i] *= _derivative(code, a[s, i], one)


@njit(**JIT)
def hidden_deltas(Dl, A, params, n, sizes, acts):
    """delta[m]_j = act_m'(z[m]_j) * sum_i W[m+1]_ij * delta[m+1]_i,  m = L-1..1.

    Dl      (>= n * sum(D),)  block L given (``output_delta``); blocks L-1..1 overwritten
    A       (>= n * sum(D),)  after ``forward``
    params  (P,)              the weights of the forward pass
    """
    one = params.dtype.type(1)
    for m in range(sizes.shape[0] - 2, 0, -1):
        W_next, _ = _layer(params, sizes, m + 1)
        d_next = _block(Dl, sizes, m + 1, n)
        d = _block(Dl, sizes, m, n)
        a = _block(A, sizes, m, n)
        code = acts[m - 1]
        for s in range(n):
            for j in range(d.shape[1]):
                d[s, j] = 0
            # Row i of W[m+1] is contiguous: accumulate axpy-style over j.
            for i in range(W_next.shape[0]):
                di = d_next[s, i]
                for j in range(W_next.shape[1]):
                    d[s, j] += W_next[i, j] * di
            for j in range(d.shape[1]):
                d[s, j] *= _derivative(code, a[s, j], one)


@njit(**JIT)
def accumulate_gradients(grad, Dl, A, n, sizes):
    """dC/dW[m]_ij += delta[m]_i * a[m-1]_j,  dC/db[m]_i += delta[m]_i, summed over n samples.

    grad  (P,)               in/out: sums are added to it (zero it first)
    Dl    (>= n * sum(D),)   after ``output_delta`` and ``hidden_deltas``
    A     (>= n * sum(D),)   after ``forward``
    """
    for m in range(1, sizes.shape[0]):
        gW, gb = _layer(grad, sizes, m)
        d = _block(Dl, sizes, m, n)
        a_in = _block(A, sizes, m - 1, n)
        for s in range(n):
            for i in range(gW.shape[0]):
                di = d[s, i]
                gb[i] += di
                for j in range(gW.shape[1]):  # rank-1 update, contiguous in j
                    gW[i, j] += di * a_in[s, j]


@njit(**JIT)
def sgd_update(params, velocity, grad, sizes, scale, lr, momentum, nesterov, l2, use_bias):
    """w <- w - lr * g with g = scale * grad (+ l2 * w for weights), through momentum if > 0.

    Momentum as torch.optim.SGD: v <- momentum * v + g; g <- v, or g + momentum * v (Nesterov).

    params    (P,)  in/out
    velocity  (P,)  in/out, used only when momentum > 0
    grad      (P,)  summed gradient of the batch; scale = 1 / batch size
    """
    for m in range(1, sizes.shape[0]):
        W, b = _layer(params, sizes, m)
        gW, gb = _layer(grad, sizes, m)
        vW, vb = _layer(velocity, sizes, m)
        for i in range(W.shape[0]):
            for j in range(W.shape[1]):
                g = scale * gW[i, j] + l2 * W[i, j]
                if momentum != 0:
                    vW[i, j] = momentum * vW[i, j] + g
                    g = g + momentum * vW[i, j] if nesterov else vW[i, j]
                W[i, j] -= lr * g
            if use_bias:
                g = scale * gb[i]
                if momentum != 0:
                    vb[i] = momentum * vb[i] + g
                    g = g + momentum * vb[i] if nesterov else vb[i]
                b[i] -= lr * g


@njit(**JIT)
def train_epoch(params, velocity, grad, A, Dl, cost, Yb, X, Y, order, batch_size,
                sizes, acts, loss, lr, momentum, nesterov, l2, use_bias, stats):
    """One epoch of mini-batch SGD, all batches in compiled code (online: batch_size 1;
    full batch: batch_size n). Each batch: forward, deltas with the forward-pass
    weights, summed gradient, then one update with scale 1 / batch size.

    params, velocity, grad  (P,)                   in/out
    A, Dl                   (>= batch_size * sum(D),)  workspaces
    cost                    (>= batch_size,) float64   workspace
    Yb                      (batch_size, D[L])         workspace for the batch's targets
    X, Y                    (n, D[0]), (n, D[L])       the data set
    order                   (n,) int64                 sample order of this epoch
    stats                   (3,) float64 out: [sum of per-sample costs, samples seen,
                            1 if stopped at a batch whose cost was not finite else 0];
                            that batch's update is not applied.
    """
    scalar_t = params.dtype.type
    lr, momentum, l2 = scalar_t(lr), scalar_t(momentum), scalar_t(l2)
    stats[0] = 0.0
    stats[1] = 0.0
    stats[2] = 0.0
    n_total = order.shape[0]
    for start in range(0, n_total, batch_size):
        nb = min(batch_size, n_total - start)
        x_b = _block(A, sizes, 0, nb)
        for s in range(nb):
            r = order[start + s]
            x_b[s, :] = X[r, :]
            Yb[s, :] = Y[r, :]
        forward(A, params, nb, sizes, acts)
        sample_costs(cost, A, Yb, nb, sizes, acts, loss)
        batch_cost = 0.0
        for s in range(nb):
            batch_cost += cost[s]
        if not math.isfinite(batch_cost):
            stats[2] = 1.0
            return
        stats[0] += batch_cost
        stats[1] += nb
        output_delta(Dl, A, Yb, nb, sizes, acts, loss)
        hidden_deltas(Dl, A, params, nb, sizes, acts)
        grad[:] = 0
        accumulate_gradients(grad, Dl, A, nb, sizes)
        sgd_update(params, velocity, grad, sizes, scalar_t(1) / scalar_t(nb), lr, momentum,
                   nesterov, l2, use_bias)
