"""NumPy matrix formulation of the kernels: the reference and the rival.

Same names, argument order and layouts as ``fastbp.kernels.loop``; each layer is one
matrix product over the whole batch (``a[m] = act(a[m-1] @ W[m].T + b[m])``).
"""
import functools

import numpy as np

from fastbp.kernels import scalar
from fastbp.kernels._host import empty, to_device, to_host  # noqa: F401  (backend contract)
from fastbp.kernels.codes import ADAM, CROSS_ENTROPY, RELU, RPROP, SGD, SIGMOID, SOFTMAX, TANH
from fastbp.kernels.scalar import LOG_FLOOR


def workspace_rows(batch_size):
    """Rows that train_epoch's workspaces need: a whole batch, one matrix product per layer
    (Sb is not used: the batch's weights are gathered as an array)."""
    return batch_size


@functools.lru_cache(maxsize=64)
def _offsets(key):
    """(offsets of W[m] in params, unit offsets sum(D[:m])) for m = 0..L; key: sizes' bytes."""
    sizes = [int(d) for d in np.frombuffer(key, np.int64)]
    w_off, u_off = [0, 0], [0]
    for m in range(1, len(sizes)):
        w_off.append(w_off[-1] + sizes[m] * (sizes[m - 1] + 1))
        u_off.append(u_off[-1] + sizes[m - 1])
    return w_off, u_off, sizes


def _layer(params, sizes, m):
    """Views W[m] (D[m], D[m-1]) and b[m] (D[m],) of params (or of grad)."""
    w_off, _, d = _offsets(sizes.tobytes())
    p, n_out, n_in = w_off[m], d[m], d[m - 1]
    return (params[p:p + n_out * n_in].reshape(n_out, n_in),
            params[p + n_out * n_in:p + n_out * (n_in + 1)])


def _block(A, sizes, m, n):
    """View of block m, (n, D[m]), of a layer-major workspace."""
    _, u_off, d = _offsets(sizes.tobytes())
    off = n * u_off[m]
    return A[off:off + n * d[m]].reshape(n, d[m])


def _activate(code, z):
    """a = act(z) in place on a (n, D) array."""
    if code == SIGMOID:
        e = np.exp(-np.abs(z))
        np.divide(np.where(z >= 0, 1, e), 1 + e, out=z)
    elif code == TANH:
        np.tanh(z, out=z)
    elif code == RELU:
        np.maximum(z, 0, out=z)
    elif code == SOFTMAX:
        top = z.max(axis=1, keepdims=True)
        # A row whose max is infinite (an overflowed pre-activation) gets its limit, the
        # units at the max sharing the probability (z - top would be inf - inf, NaN).
        inf = np.isinf(top[:, 0])
        limit = (z[inf] == top[inf]).astype(z.dtype)
        with np.errstate(invalid="ignore"):
            z -= top
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        z[inf] = limit / limit.sum(axis=1, keepdims=True)


def _derivative(code, a):
    """act'(z) from the stored activation a = act(z)."""
    if code == SIGMOID:
        return a * (1 - a)
    if code == TANH:
        return 1 - a * a
    if code == RELU:
        return (a > 0).astype(a.dtype)
    return np.ones_like(a)


def forward(A, params, n, sizes, acts):
    """z[m] = a[m-1] @ W[m].T + b[m],  a[m] = act_m(z[m]),  m = 1..L (layouts as loop.forward)."""
    for m in range(1, len(sizes)):
        W, b = _layer(params, sizes, m)
        z = _block(A, sizes, m, n)
        np.matmul(_block(A, sizes, m - 1, n), W.T, out=z)
        z += b
        _activate(acts[m - 1], z)


def sample_costs(cost, A, Y, n, sizes, acts, loss):
    """cost_s = C(a[L], y) per sample, summed over outputs in float64."""
    L = len(sizes) - 1
    a = _block(A, sizes, L, n).astype(np.float64)
    y = np.asarray(Y[:n], dtype=np.float64)
    if loss == CROSS_ENTROPY:
        c = -(y * np.log(np.maximum(a, LOG_FLOOR)))
        if acts[L - 1] == SIGMOID:
            c -= (1 - y) * np.log(np.maximum(1 - a, LOG_FLOOR))
    else:
        c = 0.5 * (y - a) ** 2
    cost[:n] = c.sum(axis=1)


def output_delta(Dl, A, Y, sw, n, sizes, acts, loss):
    """delta[L] = sw (*) dC/da[L] (*) act_L'(z[L]); a[L] - y for softmax or sigmoid +
    cross-entropy; sw (n,) per-sample weights, or empty for all 1."""
    L = len(sizes) - 1
    a = _block(A, sizes, L, n)
    d = _block(Dl, sizes, L, n)
    if loss == CROSS_ENTROPY and acts[L - 1] == SOFTMAX:
        np.multiply(a, Y[:n].sum(axis=1, keepdims=True), out=d)  # a * sum(y) - y, see scalar
        d -= Y[:n]
    else:
        np.subtract(a, Y[:n], out=d)
        if loss != CROSS_ENTROPY:
            if acts[L - 1] == SOFTMAX:
                d -= (d * a).sum(axis=1, keepdims=True)
                d *= a
            else:
                d *= _derivative(acts[L - 1], a)
    if len(sw):
        d *= sw[:n, None]


def hidden_deltas(Dl, A, params, n, sizes, acts):
    """delta[m] = act_m'(z[m]) (*) (delta[m+1] @ W[m+1]),  m = L-1..1."""
    for m in range(len(sizes) - 2, 0, -1):
        W_next, _ = _layer(params, sizes, m + 1)
        d = _block(Dl, sizes, m, n)
        np.matmul(_block(Dl, sizes, m + 1, n), W_next, out=d)
        d *= _derivative(acts[m - 1], _block(A, sizes, m, n))


def accumulate_gradients(grad, Dl, A, n, sizes):
    """dC/dW[m] += delta[m].T @ a[m-1],  dC/db[m] += sum over samples of delta[m]."""
    for m in range(1, len(sizes)):
        gW, gb = _layer(grad, sizes, m)
        d = _block(Dl, sizes, m, n)
        a_in = _block(A, sizes, m - 1, n)
        # One sample: a broadcast outer product; BLAS is three times slower at inner size 1.
        gW += d.T * a_in if n == 1 else d.T @ a_in
        gb += d.sum(axis=0)


def update(params, state, steps, grad, sizes, scale, opt, hyper, use_bias):
    """One optimizer step on every parameter (see loop.update), array by array: the
    arithmetic steps of ``scalar`` applied to whole arrays; RPROP, which branches on signs,
    through np.where."""
    dt = params.dtype.type
    steps[0] += 1
    c = scalar.in_dtype(scalar.step_constants(hyper, int(steps[0])), dt)
    lr, momentum, nesterov, l2 = c.lr, c.momentum, c.nesterov, c.l2
    eta_minus, eta_plus, step_min, step_max = c.eta_minus, c.eta_plus, c.step_min, c.step_max
    one = dt(1)
    if opt == SGD and momentum == 0 and l2 == 0 and use_bias:
        params -= (lr * dt(scale)) * grad  # plain SGD: the whole buffer in one pass
        return
    for m in range(1, len(sizes)):
        layers = zip(_layer(params, sizes, m), _layer(grad, sizes, m),
                     _layer(state[0], sizes, m), _layer(state[1], sizes, m))
        for k, (w, g_sum, s0, s1) in enumerate(layers):
            is_bias = k == 1
            if is_bias and not use_bias:
                continue
            g = dt(scale) * g_sum if is_bias else scalar.penalized_gradient(g_sum, w, dt(scale), l2)
            if opt == ADAM:
                w[...], s0[...], s1[...] = scalar.adam_step(w, g, s0, s1, c)
            elif opt == RPROP:
                direction = g * s0
                s1 *= np.where(direction > 0, eta_plus, np.where(direction < 0, eta_minus, one))
                np.clip(s1, step_min, step_max, out=s1)
                g = np.where(direction < 0, dt(0), g)
                w -= np.sign(g) * s1
                s0[...] = g
            else:
                w[...], s0[...] = scalar.sgd_step(w, g, s0, lr, momentum, nesterov, one)


def train_epoch(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order, batch_size,
                sizes, acts, loss, opt, hyper, use_bias, stats):
    """One epoch, one Python iteration per batch (see loop.train_epoch)."""
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported via stats
        _train_epoch(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order,
                     batch_size, sizes, acts, loss, opt, hyper, use_bias, stats)


def _train_epoch(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order, batch_size,
                 sizes, acts, loss, opt, hyper, use_bias, stats):
    stats[:] = 0.0
    n_total = len(order)
    for start in range(0, n_total, batch_size):
        rows = order[start:start + batch_size]
        nb = len(rows)
        _block(A, sizes, 0, nb)[...] = X[rows]
        Yb[:nb] = Y[rows]
        sw = SW[rows] if len(SW) else SW
        forward(A, params, nb, sizes, acts)
        sample_costs(cost, A, Yb, nb, sizes, acts, loss)
        batch_cost = float(cost[:nb] @ sw) if len(sw) else float(cost[:nb].sum())
        if not np.isfinite(batch_cost):
            stats[2] = 1.0
            return
        batch_weight = float(sw.sum(dtype=np.float64)) if len(sw) else nb
        stats[0] += batch_cost
        stats[1] += nb
        stats[3] += batch_weight
        if batch_weight == 0:
            continue
        output_delta(Dl, A, Yb, sw, nb, sizes, acts, loss)
        hidden_deltas(Dl, A, params, nb, sizes, acts)
        grad[:] = 0
        accumulate_gradients(grad, Dl, A, nb, sizes)
        update(params, state, steps, grad, sizes, 1.0 / batch_weight, opt, hyper, use_bias)
