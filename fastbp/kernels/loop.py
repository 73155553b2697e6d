"""Numba CPU loop kernels: the equations of backpropagation written as loops.

The kernels of the backend contract (``fastbp.kernels``) take the flat buffers, cut
per-layer views once per call and hand them to the per-layer kernels of
``loop_layers.py`` (each register-blocked kernel beside its plain loop form). Online SGD
runs through ``loop_online.py``, which works on the flat buffers directly. Every kernel
works for any depth with one compiled specialization per dtype: the shape travels in
``sizes``, the choices in integer codes.
"""
import math

from numba import njit

from fastbp._config import JIT
from fastbp.kernels import scalar
from fastbp.kernels._host import empty, to_device, to_host  # noqa: F401  (backend contract)
from fastbp.kernels.codes import SGD, SIGMOID
from fastbp.kernels.loop_layers import (_delta_layer, _delta_layer_threads, _forward_layer,
                                        _forward_layer_threads, _grad_layer,
                                        _grad_layer_threads, _update_layer, threads_pay)
from fastbp.kernels.loop_online import fused_online_epoch

# train_epoch works through a batch in pieces of at most WORK_ROWS samples, summing
# their gradients before the one update: a full batch then runs from cache, and the
# workspaces need only min(batch_size, WORK_ROWS) rows.
WORK_ROWS = 256


def workspace_rows(batch_size):
    """Rows that train_epoch's workspaces A, Dl, cost, Yb and Sb need for this batch size."""
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
def _block_offset(sizes, m, n):
    """Where block m, (n, D[m]), of a layer-major workspace for n samples starts."""
    off = 0
    for k in range(m):
        off += sizes[k]
    return off * n


@njit(**JIT)
def _block(A, sizes, m, n):
    """View of block m, (n, D[m]), of a layer-major workspace for n samples."""
    off = _block_offset(sizes, m, n)
    return A[off:off + n * sizes[m]].reshape((n, sizes[m]))


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
        if threads_pay(n, W):
            _forward_layer_threads(z, W, b, a_in, acts[m - 1], one)
        else:
            _forward_layer(z, W, b, a_in, acts[m - 1], one, 0, n)


@njit(**JIT)
def sample_costs(cost, A, Y, n, sizes, acts, loss):
    """cost_s = C(a[L], y) per sample: 0.5 * sum (y - a)^2, or the cross-entropy.

    cost  (>= n,) float64  out, overwritten
    A     (>= n * sum(D),) after ``forward``
    Y     (n, D[L])        targets
    """
    L = sizes.shape[0] - 1
    off, n_out = _block_offset(sizes, L, n), sizes[L]
    binary = acts[L - 1] == SIGMOID
    for s in range(n):
        cost[s] = scalar.row_cost(A, off + s * n_out, Y, s, n_out, binary, loss)


@njit(**JIT)
def output_delta(Dl, A, Y, sw, n, sizes, acts, loss):
    """delta[L] = sw (*) dC/da[L] (*) act_L'(z[L]); a[L] - y for softmax or sigmoid +
    cross-entropy (scalar.output_delta_row), times the sample's weight.

    Dl  (>= n * sum(D),)  block L overwritten
    A   (>= n * sum(D),)  after ``forward``
    Y   (n, D[L])         targets
    sw  (n,) or (0,)      per-sample weights; empty: every weight 1
    """
    one = A.dtype.type(1)
    L = sizes.shape[0] - 1
    off, n_out = _block_offset(sizes, L, n), sizes[L]
    for s in range(n):
        row = off + s * n_out
        scalar.output_delta_row(Dl, row, A, row, Y, s, n_out, acts[L - 1], loss, one)
        if sw.shape[0]:
            for i in range(row, row + n_out):
                Dl[i] *= sw[s]


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
        if threads_pay(n, W_next):
            _delta_layer_threads(d, W_next, d_next, a, acts[m - 1], one)
        else:
            _delta_layer(d, W_next, d_next, a, acts[m - 1], one, 0, n)


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
        if threads_pay(n, gW):
            _grad_layer_threads(gW, gb, d, a_in)
        else:
            _grad_layer(gW, gb, d, a_in, 0, gW.shape[0])


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
    (lr, momentum, nesterov, l2, step_size, beta1, beta2, sqrt_bc2, eps, eta_minus, eta_plus,
     step_min, step_max) = scalar.step_constants(hyper, t)
    for m in range(1, sizes.shape[0]):
        W, b = _layer(params, sizes, m)
        gW, gb = _layer(grad, sizes, m)
        S0W, S0b = _layer(state[0], sizes, m)
        S1W, S1b = _layer(state[1], sizes, m)
        _update_layer(W, b, S0W, S0b, S1W, S1b, gW, gb, scale, opt, dt(lr), dt(momentum),
                      nesterov, dt(l2), dt(step_size), dt(beta1), dt(beta2), dt(sqrt_bc2),
                      dt(eps), dt(eta_minus), dt(eta_plus), dt(step_min), dt(step_max),
                      use_bias)


@njit(**JIT)
def train_epoch(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order, batch_size,
                sizes, acts, loss, opt, hyper, use_bias, stats):
    """One epoch, all batches in compiled code (online: batch_size 1; full batch:
    batch_size n). Each batch: forward, deltas with the forward-pass weights, the summed
    gradient weighted by the samples' weights, then one ``update`` with scale 1 / (sum of
    the batch's weights) -- 1 / batch size without weights. A batch whose weights sum to 0
    makes no update. A batch is worked through in pieces of at most WORK_ROWS samples.

    params, grad            (P,)                        in/out
    state, steps            (2, P), (1,) int64          optimizer state, in/out (``update``)
    A, Dl                   (>= rows * sum(D),)         workspaces, rows = workspace_rows(batch_size)
    cost                    (>= rows,) float64          workspace
    Yb, Sb                  (rows, D[L]), (rows,)       workspaces for targets and weights
    X, Y                    (n, D[0]), (n, D[L])        the data set
    SW                      (n,) or (0,)                per-sample weights; empty: all 1
    order                   (n,) int64                  sample order of this epoch
    opt, hyper              optimizer code and (N_HYPER,) float64 hyperparameters
    stats                   (4,) float64 out: [sum of weighted per-sample costs, samples
                            seen, 1 if stopped at a batch whose cost was not finite else
                            0, sum of weights seen]; that batch's update is not applied.
    """
    dt = params.dtype.type
    stats[:] = 0.0
    weighted = SW.shape[0] > 0
    if batch_size == 1 and opt == SGD:
        lr, momentum, nesterov, l2 = scalar.step_constants(hyper, 1)[:4]
        steps[0] += fused_online_epoch(params, state[0], A, Dl, X, Y, SW, order, sizes, acts,
                                       loss, dt(lr), dt(momentum), nesterov, dt(l2), use_bias,
                                       stats)
        return
    n_total = order.shape[0]
    for start in range(0, n_total, batch_size):
        stop = min(start + batch_size, n_total)
        grad[:] = 0
        batch_cost = 0.0
        batch_weight = 0.0
        for lo in range(start, stop, WORK_ROWS):
            nb = min(WORK_ROWS, stop - lo)
            x_b = _block(A, sizes, 0, nb)
            for s in range(nb):
                r = order[lo + s]
                x_b[s, :] = X[r, :]
                Yb[s, :] = Y[r, :]
                if weighted:
                    Sb[s] = SW[r]
            sw = Sb[:nb] if weighted else SW
            forward(A, params, nb, sizes, acts)
            sample_costs(cost, A, Yb, nb, sizes, acts, loss)
            for s in range(nb):
                if weighted:
                    batch_cost += cost[s] * sw[s]
                    batch_weight += sw[s]
                else:
                    batch_cost += cost[s]
            output_delta(Dl, A, Yb, sw, nb, sizes, acts, loss)
            hidden_deltas(Dl, A, params, nb, sizes, acts)
            accumulate_gradients(grad, Dl, A, nb, sizes)
        if not math.isfinite(batch_cost):
            stats[2] = 1.0
            return
        if not weighted:
            batch_weight = stop - start
        stats[0] += batch_cost
        stats[1] += stop - start
        stats[3] += batch_weight
        if batch_weight > 0:
            update(params, state, steps, grad, sizes, dt(1) / dt(batch_weight), opt, hyper,
                   use_bias)
