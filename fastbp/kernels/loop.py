"""Numba CPU loop kernels: the equations of backpropagation written as loops.

Array layouts are described in ``fastbp.kernels``. Every kernel works for any depth
with one compiled specialization per dtype: the shape travels in ``sizes``, the
choices in integer codes. Inner loops run over the contiguous index (the input index
j of ``W[m]_ij`` and of a sample's activation row), so they vectorize.

The public kernels take flat buffers; each cuts its per-layer views once per call and
hands them to a per-layer kernel (``_layer_*``). Online training, where a sample's work
is too small to pay for views, indexes the flat buffers directly (``_sample_*``).
"""
import math

import numba
import numpy as np
from numba import njit

from fastbp._config import JIT
from fastbp.kernels import scalar
from fastbp.kernels._host import empty, to_device, to_host  # noqa: F401  (backend contract)
from fastbp.kernels.codes import (CROSS_ENTROPY, H_BETA1, H_BETA2, H_EPS, H_ETA_MINUS,
                                  H_ETA_PLUS, H_L2, H_LR, H_MOMENTUM, H_NESTEROV,
                                  H_STEP_MAX, H_STEP_MIN, SGD, SIGMOID, SOFTMAX)

# Samples per cache block in the batch kernels: a block of activations (SAMPLE_BLOCK rows
# of up to a few thousand floats) stays in L2 while rows of W stream through L1.
SAMPLE_BLOCK = 32
# train_epoch works through a batch in pieces of at most WORK_ROWS samples, summing
# their gradients before the one update: a full batch then runs from cache, and the
# workspaces need only min(batch_size, WORK_ROWS) rows.
WORK_ROWS = 256

_activate = njit(**JIT)(scalar.activate)
_derivative = njit(**JIT)(scalar.derivative)
_cost_term = njit(**JIT)(scalar.cost_term)
_optimizer_step = njit(**JIT)(scalar.optimizer_step)
_sgd_step = njit(**JIT)(scalar.sgd_step)


def workspace_rows(batch_size):
    """Rows that train_epoch's workspaces A, Dl, cost and Yb need for this batch size."""
    return min(batch_size, WORK_ROWS)


# -- views --------------------------------------------------------------------------------

@njit(**JIT)
def _layer(params, sizes, m):
    """Views W[m] (D[m], D[m-1]) and b[m] (D[m],) of params (or of grad)."""
    p = 0
    for k in range(1, m):
        p += sizes[k] * (sizes[k - 1] + 1)
    n_out, n_in = sizes[m], sizes[m - 1]
    W = params[p:p + n_out * n_in].reshape((n_out, n_in))
    b = params[p + n_out * n_in:p + n_out * (n_in + 1)]
    return W, b


@njit(**JIT)
def _block(A, sizes, m, n):
    """View of block m, (n, D[m]), of a layer-major workspace for n samples."""
    off = 0
    for k in range(m):
        off += sizes[k]
    off *= n
    return A[off:off + n * sizes[m]].reshape((n, sizes[m]))


# -- per-sample rows ----------------------------------------------------------------------

@njit(**JIT)
def _activate_row(z, code, one):
    """a = act(z) in place on one sample's row; softmax: exp(z - max z) / sum."""
    if code == SOFTMAX:
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
    else:
        for i in range(z.shape[0]):
            z[i] = _activate(code, z[i], one)


@njit(**JIT)
def _row_cost(a, y, binary, loss):
    """C(a[L], y) of one sample in float64: 0.5 * sum (y - a)^2, or the cross-entropy."""
    c = 0.0
    for i in range(a.shape[0]):
        c += _cost_term(y[i], a[i], binary, loss)
    return c


@njit(**JIT)
def _row_output_delta(d, a, y, code, loss, one):
    """delta[L] of one sample (see output_delta)."""
    if loss == CROSS_ENTROPY and code == SOFTMAX:
        # a_i * sum_k y_k - y_i: the exact gradient, a - y when the row sums to 1.
        total = one - one
        for i in range(a.shape[0]):
            total += y[i]
        for i in range(a.shape[0]):
            d[i] = a[i] * total - y[i]
        return
    for i in range(a.shape[0]):
        d[i] = a[i] - y[i]
    if loss == CROSS_ENTROPY:
        return  # sigmoid + binary cross-entropy: a - y exactly
    if code == SOFTMAX:
        # Softmax Jacobian: delta_i = a_i * (g_i - sum_k g_k a_k), g = a - y.
        dot = one - one
        for i in range(a.shape[0]):
            dot += d[i] * a[i]
        for i in range(a.shape[0]):
            d[i] = a[i] * (d[i] - dot)
    else:
        for i in range(a.shape[0]):
            d[i] *= _derivative(code, a[i], one)


# -- per-layer kernels --------------------------------------------------------------------

@njit(**JIT)
def _layer_forward(z, W, b, a_in, code, one, lo, hi):
    """z_si = sum_j W_ij * a_in_sj + b_i, then a = act(z) in place, for samples lo..hi-1.

    z     (n, n_out)   out
    W     (n_out, n_in)
    a_in  (n, n_in)
    """
    n_out, n_in = W.shape
    # Rows in blocks of 4: four independent sums share each load of a[m-1]_j, so the
    # j loop is neither latency-bound on one accumulator nor load-bound. The block's
    # 4 rows of W stay in L1 while a block of samples, held in L2, streams past.
    full = n_out - n_out % 4
    for s0 in range(lo, hi, SAMPLE_BLOCK):
        s1 = min(s0 + SAMPLE_BLOCK, hi)
        quads = s1 - (s1 - s0) % 4
        for i in range(0, full, 4):
            # 4 rows x 4 samples: 16 independent sums, 8 loads per 16 multiply-adds.
            for s in range(s0, quads, 4):
                z0, z1, z2, z3 = b[i], b[i + 1], b[i + 2], b[i + 3]
                y0, y1, y2, y3 = b[i], b[i + 1], b[i + 2], b[i + 3]
                u0, u1, u2, u3 = b[i], b[i + 1], b[i + 2], b[i + 3]
                v0, v1, v2, v3 = b[i], b[i + 1], b[i + 2], b[i + 3]
                for j in range(n_in):  # contiguous in W[m] and in a[m-1]
                    x, y, u, v = a_in[s, j], a_in[s + 1, j], a_in[s + 2, j], a_in[s + 3, j]
                    w0, w1, w2, w3 = W[i, j], W[i + 1, j], W[i + 2, j], W[i + 3, j]
                    z0 += w0 * x
                    z1 += w1 * x
                    z2 += w2 * x
                    z3 += w3 * x
                    y0 += w0 * y
                    y1 += w1 * y
                    y2 += w2 * y
                    y3 += w3 * y
                    u0 += w0 * u
                    u1 += w1 * u
                    u2 += w2 * u
                    u3 += w3 * u
                    v0 += w0 * v
                    v1 += w1 * v
                    v2 += w2 * v
                    v3 += w3 * v
                z[s, i], z[s, i + 1], z[s, i + 2], z[s, i + 3] = z0, z1, z2, z3
                z[s + 1, i], z[s + 1, i + 1], z[s + 1, i + 2], z[s + 1, i + 3] = y0, y1, y2, y3
                z[s + 2, i], z[s + 2, i + 1], z[s + 2, i + 2], z[s + 2, i + 3] = u0, u1, u2, u3
                z[s + 3, i], z[s + 3, i + 1], z[s + 3, i + 2], z[s + 3, i + 3] = v0, v1, v2, v3
            for s in range(quads, s1):
                z0, z1, z2, z3 = b[i], b[i + 1], b[i + 2], b[i + 3]
                for j in range(n_in):
                    x = a_in[s, j]
                    z0 += W[i, j] * x
                    z1 += W[i + 1, j] * x
                    z2 += W[i + 2, j] * x
                    z3 += W[i + 3, j] * x
                z[s, i], z[s, i + 1], z[s, i + 2], z[s, i + 3] = z0, z1, z2, z3
        for i in range(full, n_out):
            for s in range(s0, s1):
                acc = b[i]
                for j in range(n_in):
                    acc += W[i, j] * a_in[s, j]
                z[s, i] = acc
        for s in range(s0, s1):
            _activate_row(z[s], code, one)


@njit(**JIT)
def _layer_delta(d, W_next, d_next, a, code, one, lo, hi):
    """d_sj = act'(a_sj) * sum_i W_next_ij * d_next_si, for samples lo..hi-1.

    d       (n, n_here)     out
    W_next  (n_next, n_here)
    d_next  (n, n_next)
    a       (n, n_here)     activations of this layer
    """
    n_next, n_here = W_next.shape
    # Rows of W[m+1] in blocks of 4 per sweep over j (one load and store of delta[m]_j
    # per four multiply-adds); the 4 rows stay in L1 across a block of samples.
    full = n_next - n_next % 4
    for s0 in range(lo, hi, SAMPLE_BLOCK):
        s1 = min(s0 + SAMPLE_BLOCK, hi)
        d[s0:s1, :] = 0
        pairs = s1 - (s1 - s0) % 2
        for i in range(0, full, 4):
            # 4 rows x 2 samples: each load of W[m+1]_ij serves two samples.
            for s in range(s0, pairs, 2):
                d0, d1, d2, d3 = d_next[s, i], d_next[s, i + 1], d_next[s, i + 2], d_next[s, i + 3]
                e0, e1, e2, e3 = (d_next[s + 1, i], d_next[s + 1, i + 1], d_next[s + 1, i + 2],
                                  d_next[s + 1, i + 3])
                for j in range(n_here):  # contiguous in W[m+1] and delta[m]
                    w0, w1, w2, w3 = W_next[i, j], W_next[i + 1, j], W_next[i + 2, j], W_next[i + 3, j]
                    d[s, j] += w0 * d0 + w1 * d1 + w2 * d2 + w3 * d3
                    d[s + 1, j] += w0 * e0 + w1 * e1 + w2 * e2 + w3 * e3
            for s in range(pairs, s1):
                d0, d1, d2, d3 = d_next[s, i], d_next[s, i + 1], d_next[s, i + 2], d_next[s, i + 3]
                for j in range(n_here):
                    d[s, j] += (W_next[i, j] * d0 + W_next[i + 1, j] * d1
                                + W_next[i + 2, j] * d2 + W_next[i + 3, j] * d3)
        for i in range(full, n_next):
            for s in range(s0, s1):
                di = d_next[s, i]
                for j in range(n_here):
                    d[s, j] += W_next[i, j] * di
        for s in range(s0, s1):
            for j in range(n_here):
                d[s, j] *= _derivative(code, a[s, j], one)


@njit(**JIT)
def _layer_gradient(gW, gb, d, a_in, lo, hi):
    """gW_ij += sum_s d_si * a_in_sj,  gb_i += sum_s d_si, for rows i = lo..hi-1.

    gW    (n_out, n_in)  in/out
    d     (n, n_out)
    a_in  (n, n_in)
    """
    n = d.shape[0]
    n_in = gW.shape[1]
    # A block of samples (in L2) is swept once per 4 rows of gW (in L1). A 4 x 4 tile
    # of rows x samples gives 16 multiply-adds per 4 loads of a[m-1] and 4 loads and
    # stores of gW. Contiguous in j.
    full_i = hi - (hi - lo) % 4
    for s0 in range(0, n, SAMPLE_BLOCK):
        s1 = min(s0 + SAMPLE_BLOCK, n)
        full_s = s1 - (s1 - s0) % 4
        for i in range(lo, full_i, 4):
            g0, g1, g2, g3 = gW[i], gW[i + 1], gW[i + 2], gW[i + 3]
            for s in range(s0, full_s, 4):
                p0, p1, p2, p3 = d[s, i], d[s + 1, i], d[s + 2, i], d[s + 3, i]
                q0, q1, q2, q3 = d[s, i + 1], d[s + 1, i + 1], d[s + 2, i + 1], d[s + 3, i + 1]
                r0, r1, r2, r3 = d[s, i + 2], d[s + 1, i + 2], d[s + 2, i + 2], d[s + 3, i + 2]
                t0, t1, t2, t3 = d[s, i + 3], d[s + 1, i + 3], d[s + 2, i + 3], d[s + 3, i + 3]
                for j in range(n_in):
                    x0, x1, x2, x3 = a_in[s, j], a_in[s + 1, j], a_in[s + 2, j], a_in[s + 3, j]
                    g0[j] += p0 * x0 + p1 * x1 + p2 * x2 + p3 * x3
                    g1[j] += q0 * x0 + q1 * x1 + q2 * x2 + q3 * x3
                    g2[j] += r0 * x0 + r1 * x1 + r2 * x2 + r3 * x3
                    g3[j] += t0 * x0 + t1 * x1 + t2 * x2 + t3 * x3
            for s in range(full_s, s1):
                p0, q0, r0, t0 = d[s, i], d[s, i + 1], d[s, i + 2], d[s, i + 3]
                for j in range(n_in):
                    x0 = a_in[s, j]
                    g0[j] += p0 * x0
                    g1[j] += q0 * x0
                    g2[j] += r0 * x0
                    g3[j] += t0 * x0
        for i in range(full_i, hi):
            g = gW[i]
            for s in range(s0, s1):
                ds = d[s, i]
                for j in range(n_in):
                    g[j] += ds * a_in[s, j]
        for s in range(s0, s1):
            for i in range(lo, hi):
                gb[i] += d[s, i]


@njit(**JIT)
def _layer_update(W, b, S0W, S0b, S1W, S1b, gW, gb, scale, opt, lr, momentum, nesterov, l2,
                  step_size, beta1, beta2, sqrt_bc2, eps, eta_minus, eta_plus, step_min,
                  step_max, use_bias):
    """W, b <- optimizer step from g = scale * gW + l2 * W (biases: scale * gb)."""
    one = W.dtype.type(1)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            W[i, j], S0W[i, j], S1W[i, j] = _optimizer_step(
                opt, W[i, j], scale * gW[i, j] + l2 * W[i, j], S0W[i, j], S1W[i, j], lr,
                momentum, nesterov, step_size, beta1, beta2, sqrt_bc2, eps, eta_minus,
                eta_plus, step_min, step_max, one)
        if use_bias:
            b[i], S0b[i], S1b[i] = _optimizer_step(
                opt, b[i], scale * gb[i], S0b[i], S1b[i], lr, momentum, nesterov, step_size,
                beta1, beta2, sqrt_bc2, eps, eta_minus, eta_plus, step_min, step_max, one)


# -- threads ------------------------------------------------------------------------------
# Threads split a layer's work where their writes are disjoint, so no gradient slabs are
# needed and every number is computed in the same order as with one thread (the results
# are bit-identical): forward and deltas by blocks of samples, gradients by blocks of rows
# of W. Below PARALLEL_MIN_WORK multiply-adds per layer a thread team costs more than it
# saves, and the serial kernels run.
PARALLEL_MIN_WORK = 1 << 18


@njit(**JIT)
def _threads_pay(n, W):
    # The thread count is not consulted here: reading it from compiled code would make
    # every caller uncacheable. With one thread the threaded kernels run serially.
    return n * W.size >= PARALLEL_MIN_WORK


@njit(parallel=True, **JIT)
def _layer_forward_threads(z, W, b, a_in, code, one):
    n = z.shape[0]
    for k in numba.prange((n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        _layer_forward(z, W, b, a_in, code, one, k * SAMPLE_BLOCK,
                       min((k + 1) * SAMPLE_BLOCK, n))


@njit(parallel=True, **JIT)
def _layer_delta_threads(d, W_next, d_next, a, code, one):
    n = d.shape[0]
    for k in numba.prange((n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        _layer_delta(d, W_next, d_next, a, code, one, k * SAMPLE_BLOCK,
                     min((k + 1) * SAMPLE_BLOCK, n))


@njit(parallel=True, **JIT)
def _layer_gradient_threads(gW, gb, d, a_in):
    n_out = gW.shape[0]
    rows = 4 * max(1, n_out // 64)  # about 16 chunks of whole 4-row tiles
    for k in numba.prange((n_out + rows - 1) // rows):
        _layer_gradient(gW, gb, d, a_in, k * rows, min((k + 1) * rows, n_out))


# -- the kernels of the backend contract ----------------------------------------------------

@njit(**JIT)
def forward(A, params, n, sizes, acts):
    """z[m]_i = sum_j W[m]_ij * a[m-1]_j + b[m]_i,  a[m] = act_m(z[m]),  m = 1..L.

    A       (>= n * sum(D),)  block 0 holds the inputs; blocks 1..L overwritten
    params  (P,)              weights and biases
    """
    one = params.dtype.type(1)
    for m in range(1, sizes.shape[0]):
        W, b = _layer(params, sizes, m)
        z, a_in = _block(A, sizes, m, n), _block(A, sizes, m - 1, n)
        if _threads_pay(n, W):
            _layer_forward_threads(z, W, b, a_in, acts[m - 1], one)
        else:
            _layer_forward(z, W, b, a_in, acts[m - 1], one, 0, n)


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
        cost[s] = _row_cost(a[s], Y[s], binary, loss)


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
    for s in range(n):
        _row_output_delta(d[s], a[s], Y[s], acts[L - 1], loss, one)


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
        d, d_next, a = _block(Dl, sizes, m, n), _block(Dl, sizes, m + 1, n), _block(A, sizes, m, n)
        if _threads_pay(n, W_next):
            _layer_delta_threads(d, W_next, d_next, a, acts[m - 1], one)
        else:
            _layer_delta(d, W_next, d_next, a, acts[m - 1], one, 0, n)


@njit(**JIT)
def accumulate_gradients(grad, Dl, A, n, sizes):
    """dC/dW[m]_ij += delta[m]_i * a[m-1]_j,  dC/db[m]_i += delta[m]_i, summed over n samples.

    grad  (P,)               in/out: sums are added to it (zero it first)
    Dl    (>= n * sum(D),)   after ``output_delta`` and ``hidden_deltas``
    A     (>= n * sum(D),)   after ``forward``
    """
    for m in range(1, sizes.shape[0]):
        gW, gb = _layer(grad, sizes, m)
        d, a_in = _block(Dl, sizes, m, n), _block(A, sizes, m - 1, n)
        if _threads_pay(n, gW):
            _layer_gradient_threads(gW, gb, d, a_in)
        else:
            _layer_gradient(gW, gb, d, a_in, 0, gW.shape[0])


@njit(**JIT)
def update(params, state, steps, grad, sizes, scale, opt, hyper, use_bias):
    """One optimizer step on every parameter: w <- step(w, g), g = scale * grad + l2 * w for
    weights, scale * grad for biases (skipped entirely when not use_bias). The step is
    scalar.optimizer_step: SGD with momentum, Adam or RPROP, as torch.optim computes them.

    params  (P,)            in/out
    state   (2, P)          in/out optimizer state: SGD velocity; Adam m, v; RPROP previous
                            gradient, step size
    steps   (1,) int64      in/out: updates made so far (Adam's t), incremented here
    grad    (P,)            summed gradient of the batch; scale = 1 / batch size
    hyper   (N_HYPER,) float64  hyperparameters, slots H_* of fastbp.kernels.codes
    """
    dt = params.dtype.type
    steps[0] += 1
    t = steps[0]
    bc1 = 1.0 - hyper[H_BETA1] ** t
    bc2 = 1.0 - hyper[H_BETA2] ** t
    for m in range(1, sizes.shape[0]):
        W, b = _layer(params, sizes, m)
        gW, gb = _layer(grad, sizes, m)
        S0W, S0b = _layer(state[0], sizes, m)
        S1W, S1b = _layer(state[1], sizes, m)
        _layer_update(W, b, S0W, S0b, S1W, S1b, gW, gb, scale, opt, dt(hyper[H_LR]),
                      dt(hyper[H_MOMENTUM]), hyper[H_NESTEROV] != 0, dt(hyper[H_L2]),
                      dt(hyper[H_LR] / bc1), dt(hyper[H_BETA1]), dt(hyper[H_BETA2]),
                      dt(math.sqrt(bc2)), dt(hyper[H_EPS]), dt(hyper[H_ETA_MINUS]),
                      dt(hyper[H_ETA_PLUS]), dt(hyper[H_STEP_MIN]), dt(hyper[H_STEP_MAX]),
                      use_bias)


# -- online training: one sample at a time, on flat buffers ---------------------------------
# Per sample the work is small (a few thousand multiply-adds for a 64-32-10 network), so
# these kernels index the flat buffers through offsets computed once per epoch instead of
# cutting array views: a view costs about 45 ns of slicing and reference counting.

@njit(**JIT)
def _u(x):
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
def _sample_forward(A, params, w, a_in, a_out, n_in, n_out, code, one):
    """a_out_i = act(sum_j W_ij * a_in_j + b_i) for one sample; W at params[w], rows of n_in,
    b right after W; a_in and a_out are offsets into A. Rows in blocks of 4, as in
    _layer_forward."""
    # Unsigned offsets: Numba then skips the negative-index wraparound check, which would
    # keep these loops from vectorizing.
    w, a_in, a_out, n_in, n_out = _u(w), _u(a_in), _u(a_out), _u(n_in), _u(n_out)
    b = w + n_out * n_in
    full = n_out - n_out % _u(4)
    for i in range(_u(0), full, _u(4)):
        r0, r1, r2, r3 = w + i * n_in, w + (i + _u(1)) * n_in, w + (i + _u(2)) * n_in, w + (i + _u(3)) * n_in
        z0, z1, z2, z3 = params[b + i], params[b + i + _u(1)], params[b + i + _u(2)], params[b + i + _u(3)]
        for j in range(n_in):  # contiguous in W and a
            x = A[a_in + j]
            z0 += params[r0 + j] * x
            z1 += params[r1 + j] * x
            z2 += params[r2 + j] * x
            z3 += params[r3 + j] * x
        A[a_out + i], A[a_out + i + _u(1)], A[a_out + i + _u(2)], A[a_out + i + _u(3)] = z0, z1, z2, z3
    for i in range(full, n_out):
        acc = params[b + i]
        row = w + i * n_in
        for j in range(n_in):
            acc += params[row + j] * A[a_in + j]
        A[a_out + i] = acc
    _activate_row(A[a_out:a_out + n_out], code, one)


@njit(**JIT)
def _sample_backprop_update(params, velocity, Dl, A, w, a_in, a_out, n_in, n_out, lr,
                            momentum, nesterov, l2, use_bias, propagate):
    """One sample, one layer: delta[m-1]_j = sum_i W_ij * delta[m]_i (if propagate; with the
    weights of the forward pass, before their update), then W_ij -= lr * (delta[m]_i *
    a[m-1]_j + l2 * W_ij), b_i -= lr * delta[m]_i, through momentum if > 0: the arithmetic
    of an SGD update with scale 1. Per row i one sweep over j does both, so there is no
    gradient buffer and one pass over the parameters instead of four. delta[m-1] is left
    without the activation derivative. Offsets as in _sample_forward (Dl laid out like A).
    """
    w, a_in, a_out, n_in, n_out = _u(w), _u(a_in), _u(a_out), _u(n_in), _u(n_out)  # see above
    one = params.dtype.type(1)
    b = w + n_out * n_in
    if propagate:
        Dl[a_in:a_in + n_in] = 0
    plain = momentum == 0
    start = _u(0)
    if plain and propagate:
        # Rows in blocks of 4: one load and store of delta[m-1]_j per four weights.
        start = n_out - n_out % _u(4)
        for i in range(_u(0), start, _u(4)):
            d0, d1, d2, d3 = Dl[a_out + i], Dl[a_out + i + _u(1)], Dl[a_out + i + _u(2)], Dl[a_out + i + _u(3)]
            r0, r1, r2, r3 = w + i * n_in, w + (i + _u(1)) * n_in, w + (i + _u(2)) * n_in, w + (i + _u(3)) * n_in
            for j in range(n_in):  # contiguous in W, a[m-1], delta[m-1]
                w0, w1, w2, w3 = params[r0 + j], params[r1 + j], params[r2 + j], params[r3 + j]
                Dl[a_in + j] += w0 * d0 + w1 * d1 + w2 * d2 + w3 * d3
                x = A[a_in + j]
                params[r0 + j] = w0 - lr * (d0 * x + l2 * w0)
                params[r1 + j] = w1 - lr * (d1 * x + l2 * w1)
                params[r2 + j] = w2 - lr * (d2 * x + l2 * w2)
                params[r3 + j] = w3 - lr * (d3 * x + l2 * w3)
            if use_bias:
                for k in range(i, i + _u(4)):
                    params[b + k] -= lr * Dl[a_out + k]
    for i in range(start, n_out):
        di = Dl[a_out + i]
        row = w + i * n_in
        if plain:
            for j in range(n_in):
                wt = params[row + j]
                if propagate:
                    Dl[a_in + j] += wt * di
                params[row + j] = wt - lr * (di * A[a_in + j] + l2 * wt)
            if use_bias:
                params[b + i] -= lr * di
        else:
            for j in range(n_in):
                wt = params[row + j]
                if propagate:
                    Dl[a_in + j] += wt * di
                params[row + j], velocity[row + j] = _sgd_step(
                    wt, di * A[a_in + j] + l2 * wt, velocity[row + j], lr, momentum, nesterov, one)
            if use_bias:
                params[b + i], velocity[b + i] = _sgd_step(
                    params[b + i], di, velocity[b + i], lr, momentum, nesterov, one)


@njit(**JIT)
def _online_epoch(params, velocity, A, Dl, Yb, X, Y, order, sizes, acts, loss, lr,
                  momentum, nesterov, l2, use_bias, stats):
    """train_epoch for batch_size 1: forward, cost, output delta, then per layer the fused
    backward pass and update."""
    one = params.dtype.type(1)
    L = sizes.shape[0] - 1
    w_off, a_off = _offsets(sizes)
    y = Yb[0]
    a_out = A[a_off[L]:a_off[L] + sizes[L]]
    d_out = Dl[a_off[L]:a_off[L] + sizes[L]]
    binary = acts[L - 1] == SIGMOID
    for k in range(order.shape[0]):
        r = order[k]
        for j in range(sizes[0]):
            A[j] = X[r, j]
        for i in range(y.shape[0]):
            y[i] = Y[r, i]
        for m in range(1, L + 1):
            _sample_forward(A, params, w_off[m], a_off[m - 1], a_off[m], sizes[m - 1], sizes[m],
                            acts[m - 1], one)
        c = _row_cost(a_out, y, binary, loss)
        if not math.isfinite(c):
            stats[2] = 1.0
            return
        stats[0] += c
        stats[1] += 1
        _row_output_delta(d_out, a_out, y, acts[L - 1], loss, one)
        for m in range(L, 0, -1):
            _sample_backprop_update(params, velocity, Dl, A, w_off[m], a_off[m - 1], a_off[m],
                                    sizes[m - 1], sizes[m], lr, momentum, nesterov, l2,
                                    use_bias, m > 1)
            if m > 1:
                for j in range(a_off[m - 1], a_off[m]):
                    Dl[j] *= _derivative(acts[m - 2], A[j], one)


@njit(**JIT)
def train_epoch(params, state, steps, grad, A, Dl, cost, Yb, X, Y, order, batch_size,
                sizes, acts, loss, opt, hyper, use_bias, stats):
    """One epoch, all batches in compiled code (online: batch_size 1; full batch:
    batch_size n). Each batch: forward, deltas with the forward-pass weights, summed
    gradient, then one ``update`` with scale 1 / batch size. A batch is worked through in
    pieces of at most WORK_ROWS samples.

    params, grad            (P,)                        in/out
    state, steps            (2, P), (1,) int64          optimizer state, in/out (``update``)
    A, Dl                   (>= rows * sum(D),)         workspaces, rows = workspace_rows(batch_size)
    cost                    (>= rows,) float64          workspace
    Yb                      (rows, D[L])                workspace for targets
    X, Y                    (n, D[0]), (n, D[L])        the data set
    order                   (n,) int64                  sample order of this epoch
    opt, hyper              optimizer code and (N_HYPER,) float64 hyperparameters
    stats                   (3,) float64 out: [sum of per-sample costs, samples seen,
                            1 if stopped at a batch whose cost was not finite else 0];
                            that batch's update is not applied.
    """
    dt = params.dtype.type
    stats[0] = 0.0
    stats[1] = 0.0
    stats[2] = 0.0
    if batch_size == 1 and opt == SGD:
        _online_epoch(params, state[0], A, Dl, Yb, X, Y, order, sizes, acts, loss,
                      dt(hyper[H_LR]), dt(hyper[H_MOMENTUM]), hyper[H_NESTEROV] != 0,
                      dt(hyper[H_L2]), use_bias, stats)
        steps[0] += int(stats[1])
        return
    n_total = order.shape[0]
    for start in range(0, n_total, batch_size):
        stop = min(start + batch_size, n_total)
        grad[:] = 0
        batch_cost = 0.0
        for lo in range(start, stop, WORK_ROWS):
            nb = min(WORK_ROWS, stop - lo)
            x_b = _block(A, sizes, 0, nb)
            for s in range(nb):
                r = order[lo + s]
                x_b[s, :] = X[r, :]
                Yb[s, :] = Y[r, :]
            forward(A, params, nb, sizes, acts)
            sample_costs(cost, A, Yb, nb, sizes, acts, loss)
            for s in range(nb):
                batch_cost += cost[s]
            output_delta(Dl, A, Yb, nb, sizes, acts, loss)
            hidden_deltas(Dl, A, params, nb, sizes, acts)
            accumulate_gradients(grad, Dl, A, nb, sizes)
        if not math.isfinite(batch_cost):
            stats[2] = 1.0
            return
        stats[0] += batch_cost
        stats[1] += stop - start
        update(params, state, steps, grad, sizes, dt(1) / dt(stop - start), opt, hyper,
               use_bias)
