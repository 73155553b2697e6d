"""Numba CPU loop kernels: the equations of backpropagation written as loops.

The kernels of the backend contract (``fastbp.kernels``) take the flat buffers, cut
per-layer views once per call and hand them to the per-layer kernels of
``loop_layers.py`` (each register-blocked kernel beside its plain loop form). Online SGD
runs through ``loop_online.py``, which works on the flat buffers directly. Every kernel
works for any depth with one compiled specialization per dtype: the shape travels in
``sizes``, the choices in integer codes.

What compiles when (the first run of a process compiles, Numba caches on disk after):
the contract functions are thin Python functions that pick a compiled entry point --
online SGD, batches on one thread, batches with threads -- so a run compiles only the
path it takes. ``train_epochs`` runs many epochs in one compiled call, shuffling with the
trainer's own generator, for fits that need nothing from Python between epochs.
"""
import math

import numba
import numpy as np
from numba import njit, types
from numba.extending import overload
from numba.np.random.random_methods import random_interval

from fastbp._config import JIT, JIT_NO_NRT
from fastbp.kernels import _compile_notice  # noqa: F401  (one line when compiling)
from fastbp.kernels import _checks, loop_gemm, scalar
from fastbp.kernels._host import empty, to_device, to_host  # noqa: F401  (backend contract)
from fastbp.kernels.codes import ADAM, H_LR, SGD, SIGMOID, SOFTMAX
from fastbp.kernels.loop_layers import (PARALLEL_MIN_WORK, all_finite, update_layer,
                                        block_offset, delta_pass, forward_pass, grad_pass)
from fastbp.kernels.loop_online import fused_online_epoch, online_buffers

# train_epoch works through a batch in pieces of at most WORK_ROWS samples, summing
# their gradients before the one update: a full batch then runs from cache, and the
# workspaces need only min(batch_size, WORK_ROWS) rows.
WORK_ROWS = 256


def workspace_rows(batch_size):
    """Rows that train_epoch's workspaces A, Dl, cost, Yb and Sb need for this batch size."""
    return min(batch_size, WORK_ROWS)


# One-off passes (Network.forward, loss, gradients) take threads, or gemm, only from this
# much work per layer: a first pass with threads also compiles the threaded kernels (about
# 2 s), with gemm its micro-kernel (about 5 s), which a few milliseconds of work do not pay
# back.
ONE_OFF_MIN_WORK = 1 << 24


def threads_tag(n, sizes, min_work=PARALLEL_MIN_WORK):
    """The tag that makes the compiled entry points use the threaded per-layer kernels
    (loop_layers.forward_pass): (1,) int64 holding Numba's thread count, when some layer of
    this network over n samples has min_work multiply-adds and Numba may use more than one
    thread here; else None, which makes them serial."""
    threads = numba.get_num_threads()
    if threads < 2:
        return None
    sizes = [int(d) for d in sizes]
    work = max(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return np.full(1, threads, np.int64) if n * work >= min_work else None


# -- the kernels of the backend contract ----------------------------------------------------

def forward(A, params, n, sizes, acts):
    """z[m]_i = sum_j W[m]_ij * a[m-1]_j + b[m]_i,  a[m] = act_m(z[m]),  m = 1..L.

    A       (>= n * sum(D),)  block 0 holds the inputs; blocks 1..L overwritten
    params  (P,)              weights and biases
    """
    _, width = _checks.parameters(params, sizes, acts)
    _checks.workspaces(n, width, ("A", A))
    _checks.same_dtype(params, ("A", A))
    _forward(threads_tag(n, sizes, ONE_OFF_MIN_WORK), A, params, n, sizes, acts,
             loop_gemm.work_for(sizes, params, n, ONE_OFF_MIN_WORK))


@njit(**JIT)
def _forward(tag, A, params, n, sizes, acts, work):
    forward_pass(tag, A, params, np.empty_like(params), n, sizes, acts, work)


def sample_costs(cost, A, Y, n, sizes, acts, loss):
    """cost_s = C(a[L], y) per sample: 0.5 * sum (y - a)^2, or the cross-entropy.

    cost  (>= n,) float64  out, overwritten
    A     (>= n * sum(D),) after ``forward``
    Y     (n, D[L])        targets
    """
    _checks.outputs(A, Y, n, sizes, acts)
    _checks.workspaces(n, 1, ("cost", cost))
    _sample_costs(cost, A, Y, n, sizes, acts, loss)


@njit(**JIT_NO_NRT)
def _sample_costs(cost, A, Y, n, sizes, acts, loss):
    L = sizes.shape[0] - 1
    off, n_out = block_offset(sizes, L, n), sizes[L]
    binary = acts[L - 1] == SIGMOID
    for s in range(n):
        cost[s] = scalar.row_cost(A, off + s * n_out, Y, s, n_out, binary, loss)


@njit(**JIT)
def step_few(X, Y, params, state, steps, sizes, acts, loss, opt, hyper, use_bias,
             probabilities, stats):
    """Trainer.step's lean path for a few rows: train_epoch over X (n, D[0]) and Y
    (n, D[L]) as one batch of n, in order, unweighted, serial and without gemm (the same
    numbers), its workspaces allocated here; stats as train_epoch's. False, nothing
    changed, where X or Y holds a value that is not finite or (probabilities: the
    cross-entropy) a target outside [0, 1], and where the step diverged (then put back):
    the checked path then says what went wrong."""
    n = X.shape[0]
    if not all_finite(X):
        return False
    for s in range(n):
        for j in range(Y.shape[1]):
            y = Y[s, j]
            if not math.isfinite(y) or (probabilities and not 0 <= y <= 1):
                return False
    dtype = params.dtype
    before = params.copy(), state.copy(), steps.copy()
    order = np.arange(n)
    A, Dl = np.empty(n * np.sum(sizes), dtype), np.empty(n * np.sum(sizes), dtype)
    no_weights = np.empty(0, dtype)
    if n == 1 and opt == SGD:
        _epoch_online(params, state, steps, A, Dl, X, Y, no_weights, order, sizes, acts, loss,
                      hyper, use_bias, stats)
    else:
        _epoch_batch(None, params, state, steps, np.empty_like(params), A, Dl, np.empty(n),
                     np.empty((n, Y.shape[1]), dtype), no_weights, X, Y, no_weights, order, n,
                     sizes, acts, loss, opt, hyper, use_bias, stats, None,
                     np.empty_like(params))
    if _diverged(stats, params):
        params[:], state[:], steps[:] = before
        return False
    return True


def output_delta(Dl, A, Y, sw, n, sizes, acts, loss):
    """delta[L] = sw (*) dC/da[L] (*) act_L'(z[L]); a[L] - y for softmax or sigmoid +
    cross-entropy (scalar.output_delta_row), times the sample's weight.

    Dl  (>= n * sum(D),)  block L overwritten
    A   (>= n * sum(D),)  after ``forward``
    Y   (n, D[L])         targets
    sw  (n,) or (0,)      per-sample weights; empty: every weight 1
    """
    width = _checks.outputs(A, Y, n, sizes, acts)
    _checks.workspaces(n, width, ("Dl", Dl))
    if sw.shape not in ((0,), (n,)):
        raise ValueError(f"kernel weights sw have shape {sw.shape}, expected (0,) or ({n},)")
    _output_delta(Dl, A, Y, sw, n, sizes, acts, loss)


@njit(**JIT_NO_NRT)
def _output_delta(Dl, A, Y, sw, n, sizes, acts, loss):
    one = A.dtype.type(1)
    L = sizes.shape[0] - 1
    off, n_out = block_offset(sizes, L, n), sizes[L]
    code = acts[L - 1]
    if code == SOFTMAX:
        for s in range(n):
            row = off + s * n_out
            scalar.output_delta_row(Dl, row, A, row, Y, s, n_out, code, loss, one)
    else:  # output_delta_row's elementwise case, inlined (a call per sample costs more)
        for s in range(n):
            row = off + s * n_out
            for i in range(n_out):
                Dl[row + i] = scalar.output_delta_term(A[row + i], Y[s, i], code, loss, one)
    if sw.shape[0]:
        for s in range(n):
            for i in range(off + s * n_out, off + (s + 1) * n_out):
                Dl[i] *= sw[s]


def hidden_deltas(Dl, A, params, n, sizes, acts):
    """delta[m]_j = act_m'(z[m]_j) * sum_i W[m+1]_ij * delta[m+1]_i,  m = L-1..1.

    Dl      (>= n * sum(D),)  block L given (``output_delta``); blocks L-1..1 overwritten
    A       (>= n * sum(D),)  after ``forward``
    params  (P,)              the weights of the forward pass
    """
    _, width = _checks.parameters(params, sizes, acts)
    _checks.workspaces(n, width, ("A", A), ("Dl", Dl))
    _checks.same_dtype(params, ("A", A), ("Dl", Dl))
    _hidden_deltas(threads_tag(n, sizes, ONE_OFF_MIN_WORK), Dl, A, params, n, sizes, acts,
                   loop_gemm.work_for(sizes, params, n, ONE_OFF_MIN_WORK))


@njit(**JIT)
def _hidden_deltas(tag, Dl, A, params, n, sizes, acts, work):
    delta_pass(tag, Dl, A, params, n, sizes, acts, work)


def accumulate_gradients(grad, Dl, A, n, sizes):
    """dC/dW[m]_ij += delta[m]_i * a[m-1]_j,  dC/db[m]_i += delta[m]_i, summed over n samples.

    grad  (P,)               in/out: sums are added to it (zero it first)
    Dl    (>= n * sum(D),)   after ``output_delta`` and ``hidden_deltas``
    A     (>= n * sum(D),)   after ``forward``
    """
    _, width = _checks.parameters(grad, sizes, name="grad")
    _checks.workspaces(n, width, ("A", A), ("Dl", Dl))
    _checks.same_dtype(grad, ("A", A), ("Dl", Dl))
    _accumulate_gradients(threads_tag(n, sizes, ONE_OFF_MIN_WORK), grad, Dl, A, n, sizes,
                          loop_gemm.work_for(sizes, grad, n, ONE_OFF_MIN_WORK))


@njit(**JIT)
def _accumulate_gradients(tag, grad, Dl, A, n, sizes, work):
    grad_pass(tag, grad, Dl, A, n, sizes, work)


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
    _checks.parameters(params, sizes, grad=grad, state=state)
    if steps.shape != (1,):
        raise ValueError(f"kernel buffer steps has shape {steps.shape}, expected (1,)")
    _update(params, state, steps, grad, sizes, scale, opt, hyper, use_bias)


@njit(**JIT_NO_NRT)
def _update(params, state, steps, grad, sizes, scale, opt, hyper, use_bias):
    steps[0] += 1
    k = scalar.in_dtype(scalar.step_constants(hyper, steps[0], opt == ADAM), params.dtype.type)
    S0, S1 = state[0], state[1]
    w = np.int64(0)
    for m in range(1, sizes.shape[0]):
        n_w = sizes[m] * sizes[m - 1]
        update_layer(params, S0, S1, grad, w, n_w, sizes[m], scale, opt, k, use_bias)
        w += n_w + sizes[m]


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
    _checks.epoch(params, state, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order, batch_size, sizes,
                  acts, workspace_rows(batch_size))
    if batch_size == 1 and opt == SGD:
        _epoch_online(params, state, steps, A, Dl, X, Y, SW, order, sizes, acts, loss, hyper,
                      use_bias, stats)
    else:
        rows = workspace_rows(batch_size)
        _epoch_batch(threads_tag(rows, sizes), params, state, steps, grad, A, Dl, cost, Yb, Sb,
                     X, Y, SW, order, batch_size, sizes, acts, loss, opt, hyper, use_bias, stats,
                     loop_gemm.work_for(sizes, params, rows), np.empty_like(params))


@njit(**JIT)
def _epoch_online(params, state, steps, A, Dl, X, Y, SW, order, sizes, acts, loss, hyper,
                  use_bias, stats):
    """train_epoch for online SGD (loop_online)."""
    _online_epoch(params, state, steps, Dl, X, Y, SW, order, sizes, acts, loss, hyper,
                  use_bias, stats, online_buffers(params, sizes))


@njit(**JIT)
def _online_epoch(params, state, steps, Dl, X, Y, SW, order, sizes, acts, loss, hyper,
                  use_bias, stats, buffers):
    """_epoch_online in the buffers of loop_online.online_buffers (made once per call of
    _fit_online, not once per epoch: an epoch of a tiny network takes about a
    microsecond)."""
    stats[:] = 0.0
    k = scalar.in_dtype(scalar.step_constants(hyper, 1), params.dtype.type)
    steps[0] += fused_online_epoch(params, state[0], Dl, X, Y, SW, order, sizes, acts, loss,
                                   k.lr, k.momentum, k.nesterov, k.l2, use_bias, stats,
                                   buffers)


@njit(**JIT_NO_NRT)
def _epoch_batch(tag, params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order,
                 batch_size, sizes, acts, loss, opt, hyper, use_bias, stats, work, WT):
    """train_epoch for every other case, the per-layer kernels serial or threaded (tag),
    with gemm's work array (loop_gemm.work_for) or None, and WT (like params) for each
    layer's W^T. Allocates nothing: compiled without reference counting (JIT_NO_NRT), as
    tiny networks run an epoch in about a microsecond."""
    dt = params.dtype.type
    stats[:] = 0.0
    weighted = SW.shape[0] > 0
    n_total = order.shape[0]
    for start in range(0, n_total, batch_size):
        stop = min(start + batch_size, n_total)
        grad[:] = 0
        batch_cost = 0.0
        batch_weight = 0.0
        for lo in range(start, stop, WORK_ROWS):
            nb = min(WORK_ROWS, stop - lo)
            d_in, d_out = np.uint64(sizes[0]), np.uint64(Y.shape[1])
            for s in range(nb):
                r = order[lo + s]
                # a[0] of the piece (block 0 of A) and the targets, row by row on unsigned
                # indices, so that each copy vectorizes (a slice assignment compiles its
                # broadcast checks and their messages: a second or so).
                x_row, y_row, a_row = X[r], Y[r], np.uint64(s) * d_in
                for j in range(d_in):
                    A[a_row + j] = x_row[j]
                for j in range(d_out):
                    Yb[s, j] = y_row[j]
                if weighted:
                    Sb[s] = SW[r]
            sw = Sb[:nb] if weighted else SW
            forward_pass(tag, A, params, WT, nb, sizes, acts, work)
            _sample_costs(cost, A, Yb, nb, sizes, acts, loss)
            for s in range(nb):
                if weighted:
                    batch_cost += cost[s] * sw[s]
                    batch_weight += sw[s]
                else:
                    batch_cost += cost[s]
            _output_delta(Dl, A, Yb, sw, nb, sizes, acts, loss)
            delta_pass(tag, Dl, A, params, nb, sizes, acts, work)
            grad_pass(tag, grad, Dl, A, nb, sizes, work)
        if not math.isfinite(batch_cost):
            stats[2] = 1.0
            return
        if not weighted:
            batch_weight = stop - start
        stats[0] += batch_cost
        stats[1] += stop - start
        stats[3] += batch_weight
        if batch_weight > 0:
            _update(params, state, steps, grad, sizes, dt(1) / dt(batch_weight), opt, hyper,
                    use_bias)


def compile_for(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, batch_size, sizes,
                acts, loss, opt, hyper, use_bias, rng, shuffle, epochs_per_call):
    """Compile, or load from Numba's cache, every kernel that train_epoch -- or
    train_epochs, when epochs_per_call -- will run for these arguments, by running it on
    no samples (or no epochs): so that a timed call times training alone. Changes nothing
    (the generator draws nothing). Call it under the thread count of the timed calls,
    which picks the serial or the threaded kernels."""
    if epochs_per_call:
        train_epochs(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW,
                     np.empty(X.shape[0], np.int64), rng, shuffle, np.empty(0), batch_size,
                     sizes, acts, loss, opt, hyper, use_bias, np.zeros((0, 4)))
    else:
        train_epoch(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW,
                    np.empty(0, np.int64), batch_size, sizes, acts, loss, opt, hyper, use_bias,
                    np.zeros(4))


# -- many epochs in one call ------------------------------------------------------------------

def train_epochs(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order, rng,
                 shuffle, rates, batch_size, sizes, acts, loss, opt, hyper, use_bias, history):
    """len(rates) epochs of train_epoch in one compiled call: before each, ``order`` becomes
    0..n-1, shuffled with ``rng`` when ``shuffle`` -- the draws of rng.permutation(n), so
    the generator ends where epoch-by-epoch training leaves it -- and hyper[H_LR] the
    epoch's rate. Per epoch e, history[e] receives train_epoch's stats. Stops after an
    epoch that stopped at a non-finite cost or left a parameter non-finite; returns the
    number of epochs run.

    rng      numpy.random.Generator, advanced in place
    rates    (E,) float64 learning rate of each epoch
    history  (E, 4) float64 out
    Other arguments as train_epoch's (hyper is updated in place).
    """
    # order is written here before it is read: only its length matters.
    _checks.epoch(params, state, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order[:0], batch_size,
                  sizes, acts, workspace_rows(batch_size))
    if order.shape[0] != X.shape[0] or history.shape != (rates.shape[0], 4):
        raise ValueError(f"train_epochs needs order ({X.shape[0]},) and history "
                         f"({rates.shape[0]}, 4), got {order.shape} and {history.shape}")
    if batch_size == 1 and opt == SGD:
        return _fit_online(params, state, steps, A, Dl, X, Y, SW, order, rng, shuffle, rates,
                           sizes, acts, loss, hyper, use_bias, history)
    rows = workspace_rows(batch_size)
    return _fit_batch(threads_tag(rows, sizes), params, state, steps, grad, A, Dl, cost, Yb,
                      Sb, X, Y, SW, order, rng, shuffle, rates, batch_size, sizes, acts, loss,
                      opt, hyper, use_bias, history, loop_gemm.work_for(sizes, params, rows),
                      np.empty_like(params))


@njit(**JIT_NO_NRT)
def next_order(order, rng, shuffle):
    """order <- 0..n-1, then shuffled in place with rng.permutation's draws (Numba's own
    Generator.shuffle makes the same draws but swaps through array views, 8x slower)."""
    for i in range(order.shape[0]):
        order[i] = i
    if shuffle:
        bit_generator = rng.bit_generator
        for i in range(order.shape[0] - 1, 0, -1):
            j = np.intp(random_interval(bit_generator, i))
            if i != j:
                order[i], order[j] = order[j], order[i]


@njit(**JIT_NO_NRT)
def _diverged(stats, params):
    if stats[2] != 0:
        return True
    for k in range(params.shape[0]):
        if not math.isfinite(params[k]):
            return True
    return False


@njit(**JIT)
def _fit_online(params, state, steps, A, Dl, X, Y, SW, order, rng, shuffle, rates, sizes,
                acts, loss, hyper, use_bias, history):
    buffers = online_buffers(params, sizes)
    for e in range(rates.shape[0]):
        next_order(order, rng, shuffle)
        hyper[H_LR] = rates[e]
        _online_epoch(params, state, steps, Dl, X, Y, SW, order, sizes, acts, loss, hyper,
                      use_bias, history[e], buffers)
        if _diverged(history[e], params):
            return e + 1
    return rates.shape[0]


@njit(**JIT_NO_NRT)
def _fit_batch(tag, params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order, rng,
               shuffle, rates, batch_size, sizes, acts, loss, opt, hyper, use_bias, history,
               work, WT):
    """train_epochs for the batch path; allocates nothing (JIT_NO_NRT: an epoch of XOR
    takes about a microsecond, and reference counting the arrays handed to each epoch
    took a third of it)."""
    for e in range(rates.shape[0]):
        next_order(order, rng, shuffle)
        hyper[H_LR] = rates[e]
        _epoch_batch(tag, params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order,
                     batch_size, sizes, acts, loss, opt, hyper, use_bias, history[e], work, WT)
        if _diverged(history[e], params):
            return e + 1
    return rates.shape[0]


# -- many models at once (fastbp.Sweep) ---------------------------------------------------------

def model_row(work, k):
    """Row k of a (K, W) work array; None stays None."""
    raise NotImplementedError("compiled code only")


@overload(model_row, target="cpu")
def _model_row(work, k):
    if isinstance(work, types.NoneType):
        return lambda work, k: None
    return lambda work, k: work[k]


def sweep_epoch(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, orders, active,
                batch_size, sizes, acts, loss, opt, hyper, use_bias, stats):
    """One epoch of K models of one structure, side by side: model k is train_epoch on row
    k of every array below, its own sample order and hyperparameters; the models are spread
    over Numba's threads (each model's epoch runs serially inside, so model k computes
    exactly what a single train_epoch call would, whatever the thread count).

    params, grad   (K, P)                  state (K, 2, P), steps (K, 1) int64
    A, Dl          (K, rows * sum(D))      cost (K, rows) float64, Yb (K, rows, D[L]),
    Sb             (K, rows) or (K, 0)     rows = workspace_rows(batch_size)
    X, Y, SW       the data set, shared    orders (K, n) int64: each model's sample order
    active         (K,) bool: models still training (diverged or stopped ones are skipped)
    hyper          (K, N_HYPER) float64    stats (K, 4) out: train_epoch's, per model
    """
    _checks.sweep(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, orders, active,
                  hyper, stats, batch_size, sizes, acts, workspace_rows(batch_size))
    if batch_size == 1 and opt == SGD:
        _sweep_online(params, state, steps, A, Dl, X, Y, SW, orders, active, sizes, acts, loss,
                      hyper, use_bias, stats)
    else:
        # One gemm work array per model, as each model's own fit would have one.
        work = loop_gemm.work_for(sizes, params, workspace_rows(batch_size))
        if work is not None:
            work = np.empty((params.shape[0], work.shape[0]), work.dtype)
        _sweep_batch(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, orders, active,
                     batch_size, sizes, acts, loss, opt, hyper, use_bias, stats, work)


@njit(parallel=True, **JIT)
def _sweep_online(params, state, steps, A, Dl, X, Y, SW, orders, active, sizes, acts, loss,
                  hyper, use_bias, stats):
    for k in numba.prange(params.shape[0]):
        if active[k]:
            _epoch_online(params[k], state[k], steps[k], A[k], Dl[k], X, Y, SW, orders[k],
                          sizes, acts, loss, hyper[k], use_bias, stats[k])


@njit(parallel=True, **JIT)
def _sweep_batch(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, orders, active,
                 batch_size, sizes, acts, loss, opt, hyper, use_bias, stats, work):
    for k in numba.prange(params.shape[0]):
        if active[k]:
            _epoch_batch(None, params[k], state[k], steps[k], grad[k], A[k], Dl[k], cost[k],
                         Yb[k], Sb[k], X, Y, SW, orders[k], batch_size, sizes, acts, loss, opt,
                         hyper[k], use_bias, stats[k], model_row(work, k),
                         np.empty_like(params[k]))
