"""The differential harness: every fast path held to the plain loops, bit for bit, and the
plain loops to a float64 NumPy reference, within the rounding their dtype allows.

The CPU kernels take every sum in the order of the equation (loop_tiles), so which path a
computation takes -- plain loops, register tiles, packed products, on any number of
threads, one layer at a time or fused into an online epoch -- never changes a bit. The
harness checks exactly that, over shapes drawn across every blocking boundary of every
kernel form (tile rows and lanes, cache blocks of samples, gemm's panels, strips and row
blocks, the 256-row pieces of a batch, the work thresholds of threads and gemm), batch
sizes, both dtypes and 1..4 threads (Numba runs more threads than cores: conftest gives
it 4), through the kernel passes and through every public entry: forward, gradients,
step, fit (many epochs per call and epoch by epoch), Sweep.

Profiles (the ``FASTBP_HARNESS`` environment variable):
    ci    (default) a fixed-seed sample sized for CI, about two minutes on two cores;
    long  for kernel work: many more examples and shapes up to 1025 wide and 4099 rows,
          ``FASTBP_HARNESS=long python -m pytest tests/test_harness.py`` (tens of minutes).
"""
import os

import numba
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastbp  # noqa: E402
from fastbp import _session  # noqa: E402
from fastbp.kernels import codes, loop, loop_gemm, loop_layers, loop_tiles  # noqa: E402

from ._reference import assert_within, reference  # noqa: E402

PROFILE = os.environ.get("FASTBP_HARNESS", "ci")
if PROFILE not in ("ci", "long"):
    raise ValueError(f"FASTBP_HARNESS={PROFILE!r}: expected 'ci' or 'long'")
LONG = PROFILE == "long"
# Multiply-adds one example may cost (n x the network's weights), and examples per test.
WORK = 1 << (28 if LONG else 22)
EXAMPLES = 400 if LONG else 25


def _settings(examples=EXAMPLES):
    return settings(max_examples=examples, deadline=None, derandomize=not LONG,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


R, SB = loop_tiles.R, loop_layers.SAMPLE_BLOCK
MR, KC, MC = loop_gemm.MR, loop_gemm.KC, loop_gemm.MC


def _around(*points):
    return {p + d for p in points for d in (-1, 0, 1) if p + d >= 1}


# Widths across every blocking boundary: tile rows (R) and lanes (float32 and float64),
# transposition blocks (8), gemm strips (NR = the lanes), panels (KC) and row blocks (MC),
# and the widths users have (300, 784).
WIDTHS = sorted(_around(1, 4, 8, 16, 32, R, 2 * R, loop_tiles.lanes(4), loop_tiles.lanes(8),
                        2 * loop_tiles.lanes(4) + 1, KC, MC, 300, 511, 784, 1025)
                | {2, 3, 5, 10, 17, 33, 64, 100, 128})
# Batch sizes across tiles of rows, cache blocks of samples, gemm's row blocks and the
# 256-row pieces a batch is worked through in.
BATCHES = sorted(_around(1, 2, R, SB, 2 * SB, MC, loop.WORK_ROWS) | {3, 16, 31, 64, 100, 300,
                                                                     1000, 4099})
THREADS = [t for t in (1, 2, 3, 4) if t <= numba.config.NUMBA_NUM_THREADS]
HIDDEN = ["tanh", "sigmoid", "relu", "identity"]
OUTPUTS = [("softmax", "cross_entropy"), ("sigmoid", "cross_entropy"), ("identity", "mse"),
           ("sigmoid", "mse"), ("softmax", "mse")]


def _problem(sizes, n, dtype, activations, loss, seed=0, bias=True, weighted=False):
    """(Network, X, Y, sw) for these layer sizes and n rows, seeded."""
    net = fastbp.Network(sizes, activations=activations, loss=loss, dtype=dtype, seed=seed,
                         bias=bias)
    rng = np.random.default_rng(seed)
    if net.bias:
        for b in net.biases:
            b[...] = rng.normal(0, 0.5, b.shape)  # nonzero biases: they start every sum
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    if activations[-1] == "softmax":
        Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], n)]
    else:
        Y = rng.uniform(0.05, 0.95, (n, sizes[-1])).astype(dtype)
    sw = rng.uniform(0, 2, n).astype(dtype) if weighted else np.empty(0, dtype)
    return net, X, Y, sw


@st.composite
def networks(draw, max_layers=3, work=WORK):
    """(Network, X, Y, sw): the batch size, then layer widths from the boundary sets, each
    layer at most ``work`` multiply-adds over the batch -- so wide layers come with few
    rows, long batches with narrow layers, and the middle (where threads start to pay;
    gemm from loop_gemm.MIN_WORK, which the long profile reaches) with both."""
    n = draw(st.sampled_from([b for b in BATCHES if b <= work]))
    depth = draw(st.integers(1, max_layers))
    output, loss = draw(st.sampled_from(OUTPUTS))
    budget = max(1, work // n)
    sizes = [draw(st.sampled_from([w for w in WIDTHS if w <= budget]))]
    for _ in range(depth):
        sizes.append(draw(st.sampled_from([w for w in WIDTHS if w * sizes[-1] <= budget]
                                          or [1])))
    if output == "softmax" and sizes[-1] < 2:
        output, loss = "sigmoid", "cross_entropy"
    hidden = [draw(st.sampled_from(HIDDEN)) for _ in range(depth - 1)]
    return _problem(sizes, n, draw(st.sampled_from(["float32", "float64"])), hidden + [output],
                    loss, seed=draw(st.integers(0, 2**16)), bias=draw(st.booleans()),
                    weighted=draw(st.booleans()))


def _with_threads(t, fn, *args):
    with _session.numba_threads(t):
        return fn(*args)


# -- the passes, path by path, against the plain loops ---------------------------------------

def _plain(net, X, Y, sw):
    """Forward, deltas and summed gradient through the plain loop forms, layer by layer:
    the order every other path must reproduce."""
    sizes, acts, params, dtype = net._sizes, net.act_codes, net.params, net.dtype
    n, one = X.shape[0], dtype.type(1)
    A = np.zeros(n * int(sizes.sum()), dtype)
    A[:X.size] = X.ravel()
    for m in range(1, len(sizes)):
        loop_layers._forward_layer_plain(
            A, loop_layers.block_offset(sizes, m, n), params, loop_layers.weight_offset(sizes, m),
            loop_layers.block_offset(sizes, m - 1, n), sizes[m - 1], sizes[m], acts[m - 1], one,
            0, n)
    Dl = np.zeros_like(A)
    loop.output_delta(Dl, A, Y, sw, n, sizes, acts, net.loss_code)
    for m in range(len(sizes) - 2, 0, -1):
        loop_layers._delta_layer_plain(
            Dl, loop_layers.block_offset(sizes, m, n), A, loop_layers.block_offset(sizes, m, n),
            params, loop_layers.weight_offset(sizes, m + 1),
            loop_layers.block_offset(sizes, m + 1, n), sizes[m], sizes[m + 1], acts[m - 1], one,
            0, n)
    grad = np.zeros_like(params)
    for m in range(1, len(sizes)):
        loop_layers._grad_layer_plain(
            grad, loop_layers.weight_offset(sizes, m), Dl, loop_layers.block_offset(sizes, m, n),
            A, loop_layers.block_offset(sizes, m - 1, n), n, sizes[m - 1], sizes[m], 0,
            sizes[m])
    return A, Dl, grad


def _passes(net, X, Y, sw, threads, gemm):
    """The compiled passes training runs (loop_layers.forward_pass, ...), serial
    (threads=1) or threaded, with gemm where it pays or without it."""
    sizes, acts, params, dtype = net._sizes, net.act_codes, net.params, net.dtype
    n = X.shape[0]
    tag = None if threads == 1 else np.full(1, threads, np.int64)
    work = loop_gemm.work_for(sizes, params, n) if gemm else None
    A = np.zeros(n * int(sizes.sum()), dtype)
    A[:X.size] = X.ravel()
    Dl = np.zeros_like(A)
    grad = np.zeros_like(params)
    with _session.numba_threads(threads):
        loop._forward(tag, A, params, n, sizes, acts, work)
        loop.output_delta(Dl, A, Y, sw, n, sizes, acts, net.loss_code)
        loop._hidden_deltas(tag, Dl, A, params, n, sizes, acts, work)
        loop._accumulate_gradients(tag, grad, Dl, A, n, sizes, work)
    return A, Dl, grad


def _check_passes(net, X, Y, sw, threads, gemm):
    A0, Dl0, g0 = _plain(net, X, Y, sw)
    A, Dl, g = _passes(net, X, Y, sw, threads, gemm)
    what = f"{net!r}, {X.shape[0]} rows, threads={threads}, gemm={gemm}"
    np.testing.assert_array_equal(A, A0, err_msg=f"activations: {what}")
    np.testing.assert_array_equal(Dl, Dl0, err_msg=f"deltas: {what}")
    np.testing.assert_array_equal(g, g0, err_msg=f"gradient: {what}")
    ref = reference(net, X, Y, sw)
    n, L = X.shape[0], len(net.layer_sizes) - 1
    off = loop_layers.block_offset(net._sizes, L, n)
    assert_within(A0[off:off + n * net.layer_sizes[-1]].reshape(n, -1), ref["out"],
                  ref["out_bound"], f"outputs of the plain loops, {what}")
    total = sw.sum(dtype=np.float64) if len(sw) else n
    if not net.bias:
        for b in net.unflatten(g0)[1]:
            b[...] = 0
    assert_within(g0 / total, ref["grad"], ref["grad_bound"], f"gradient, {what}")


@_settings()
@given(problem=networks(work=WORK // 4), threads=st.sampled_from(THREADS),
       gemm=st.booleans())
def test_every_pass_sums_as_the_plain_loops(problem, threads, gemm):
    """Forward, hidden deltas and gradients through the tiles or the packed products,
    serial or threaded, equal the plain loops bit for bit; the plain loops are within
    rounding of the float64 reference."""
    _check_passes(*problem, threads, gemm)


# Shapes where the packed products pay in every pass, with panels deeper than KC and not a
# multiple of it, row blocks past MC, strips past the lanes: checked on every thread count.
# Every case has products of at least loop_gemm.MIN_WORK multiply-adds, so the passes take
# the packed products there: K past a panel (784, 300), N off whole strips (259, 257), M
# off whole blocks of rows (2 MC + 5, 257, 255), a short first layer (65, 33) beside them.
GEMM_CASES = [([300, 256, 10], 257), ([784, 128, 10], 300), ([33, 257, 513], 255),
              ([65, 2 * MC + 3, 129], 2 * MC + 5)]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("sizes, n", GEMM_CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_packed_products_sum_as_the_plain_loops(sizes, n, dtype, threads):
    problem = _problem(sizes, n, dtype, ["tanh"] * (len(sizes) - 2) + ["softmax"],
                       "cross_entropy", seed=n, weighted=True)
    assert loop_gemm.work_for(np.array(sizes), problem[0].params, n) is not None
    _check_passes(*problem, threads, True)


# -- the public entries ------------------------------------------------------------------------

@_settings()
@given(problem=networks())
def test_forward_and_gradients_at_any_thread_count(problem):
    """Network.forward, predict and gradients: the same bits on 1..4 threads (the one-off
    passes take threads and gemm only from 2^24 multiply-adds: the long profile reaches
    them), the plain loops' bits, and within rounding of the float64 reference."""
    net, X, Y, sw = problem
    weights = None if len(sw) == 0 else sw
    outs = [_with_threads(t, net.forward, X) for t in THREADS]
    # gradients() gives (dW list, db list): back in params order, W[1], b[1], W[2], ...
    grads = [_with_threads(t, lambda: np.concatenate(
        [a.ravel() for pair in zip(*net.gradients(X, Y, sample_weight=weights))
         for a in pair])) for t in THREADS]
    for t, out, g in zip(THREADS, outs, grads):
        np.testing.assert_array_equal(out, outs[0], err_msg=f"forward on {t} threads")
        np.testing.assert_array_equal(g, grads[0], err_msg=f"gradients on {t} threads")
    A0, _, _ = _plain(net, X, Y, sw)
    n, L = X.shape[0], len(net.layer_sizes) - 1
    off = loop_layers.block_offset(net._sizes, L, n)
    np.testing.assert_array_equal(outs[0], A0[off:off + outs[0].size].reshape(outs[0].shape),
                                  err_msg="forward against the plain loops")
    ref = reference(net, X, Y, sw)
    assert_within(outs[0], ref["out"], ref["out_bound"], f"forward of {net!r}")
    assert_within(grads[0], ref["grad"], ref["grad_bound"], f"gradients of {net!r}")


@st.composite
def trainings(draw, work=WORK // 8):
    net, X, Y, sw = draw(networks(max_layers=2, work=work))
    schedule = draw(st.sampled_from(["online", "minibatch", "fullbatch"]))
    optimizer = draw(st.sampled_from(["sgd", "adam", "rprop"]))
    options = dict(schedule=schedule, optimizer=optimizer,
                   batch_size=draw(st.sampled_from([1, 2, 3, R + 1, 16, loop.WORK_ROWS + 1])),
                   learning_rate=0.01, l2=draw(st.sampled_from([0.0, 0.01])),
                   seed=draw(st.integers(0, 9)), shuffle=draw(st.booleans()))
    if optimizer == "sgd" and draw(st.booleans()):
        options.update(momentum=0.9, nesterov=draw(st.booleans()))
    return net, X, Y, sw, options


def _fit(net, X, Y, sw, options, threads, epochs, one_by_one):
    net = fastbp.Network(net.layer_sizes, activations=net.activations, loss=net.loss_name,
                         dtype=net.dtype, bias=net.bias, seed=0)
    trainer = fastbp.Trainer(net, threads=threads, **options)
    history = trainer.fit(X, Y, epochs=epochs, sample_weight=sw if len(sw) else None,
                          callback=(lambda e, h: False) if one_by_one else None)
    return net.params.copy(), trainer.state.copy(), history.loss


def _assert_fits_agree(net, X, Y, sw, options, epochs):
    """Fits on 1..4 threads, many epochs per call and epoch by epoch: the same parameters,
    optimizer state and losses, bit for bit."""
    runs = {(t, one): _fit(net, X, Y, sw, options, t, epochs, one)
            for t in THREADS for one in (False, True)}
    first = runs[(1, False)]
    for (t, one), (params, state, losses) in runs.items():
        what = f"{options}, threads={t}, epoch by epoch={one}"
        np.testing.assert_array_equal(params, first[0], err_msg=what)
        np.testing.assert_array_equal(state, first[1], err_msg=what)
        assert losses == first[2], what


@_settings()
@given(problem=trainings(), epochs=st.integers(1, 3))
def test_fit_on_any_path_and_thread_count_ends_in_the_same_bits(problem, epochs):
    """Many epochs per compiled call and epoch by epoch (a callback forces it), on 1..4
    threads: the same parameters, optimizer state and losses, bit for bit."""
    net, X, Y, sw, options = problem
    _assert_fits_agree(net, X, Y, sw, options, epochs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("options", [dict(schedule="fullbatch", optimizer="rprop"),
                                     dict(schedule="minibatch", batch_size=257,
                                          momentum=0.9, l2=1e-3)])
def test_fit_through_the_packed_products_at_any_thread_count(dtype, options):
    """The drawn problems of the CI profile stay below loop_gemm.MIN_WORK: a fit whose
    products take gemm (784 x 128 over 300 rows, a short last panel and batch), many
    epochs per call and epoch by epoch, on 1..4 threads: the same bits."""
    net, X, Y, sw = _problem([784, 128, 10], 300, dtype, ["tanh", "softmax"],
                             "cross_entropy", seed=3, weighted=True)
    assert loop_gemm.work_for(np.array(net.layer_sizes), net.params, 257) is not None
    options = dict(options, learning_rate=0.01, seed=0)
    _assert_fits_agree(net, X, Y, sw, options, 2)


@_settings()
@given(problem=trainings(), threads=st.sampled_from(THREADS))
def test_step_is_one_update_from_the_reference_gradient(problem, threads):
    """Trainer.step on any thread count: the same bits as on one thread, and SGD's step
    within rounding of w - lr * (the float64 reference gradient)."""
    net, X, Y, sw, options = problem
    options = dict(options, optimizer="sgd", momentum=0.0, nesterov=False, l2=0.0)
    results = []
    for t in (1, threads):
        fresh = fastbp.Network(net.layer_sizes, activations=net.activations,
                               loss=net.loss_name, dtype=net.dtype, bias=net.bias, seed=0)
        fresh.params = net.params
        fastbp.Trainer(fresh, threads=t, **options).step(X, Y, sample_weight=sw if len(sw)
                                                          else None)
        results.append(fresh.params.copy())
    np.testing.assert_array_equal(results[1], results[0], err_msg=f"step on {threads} threads")
    ref = reference(net, X, Y, sw)
    lr = options["learning_rate"]
    want = net.params.astype(np.float64) - lr * ref["grad"]
    u = float(np.finfo(net.dtype).eps)
    assert_within(results[0], want, lr * ref["grad_bound"] + 2 * u * np.abs(want) + 1e-300,
                  f"one SGD step of {net!r}")


@_settings(max(5, EXAMPLES // 3))
@given(problem=trainings(), threads=st.sampled_from(THREADS))
def test_a_sweep_model_equals_its_own_fit(problem, threads):
    """Sweep on any thread count: each model ends where its own Trainer.fit ends (also
    where that fit diverges: the same restored weights and the epochs completed)."""
    net, X, Y, sw, options = problem
    options = {k: v for k, v in options.items() if k not in ("seed", "learning_rate")}
    sweep = fastbp.Sweep(net.layer_sizes, activations=net.activations, loss=net.loss_name,
                         dtype=net.dtype.name, bias=net.bias, threads=threads,
                         grid={"seed": [0, 1], "learning_rate": [0.01, 0.03]}, **options)
    result = sweep.fit(X, Y, epochs=2, sample_weight=sw if len(sw) else None)
    for i, setting in enumerate(result.settings):
        single = fastbp.Network(net.layer_sizes, activations=net.activations,
                                loss=net.loss_name, dtype=net.dtype, bias=net.bias,
                                seed=setting["seed"])
        trainer = fastbp.Trainer(single, **dict(options, **setting))
        try:
            history = trainer.fit(X, Y, epochs=2, sample_weight=sw if len(sw) else None)
        except FloatingPointError:  # relu and identity layers at 0.03 may diverge: the fit
            history = trainer.history  # raises, the Sweep marks the model and goes on
            assert history.interrupted and result.history[i].diverged, f"model {i}: {setting}"
        np.testing.assert_array_equal(result.networks[i].params, single.params,
                                      err_msg=f"model {i}: {setting}, {options}")
        assert result.history[i].loss == history.loss


# -- the online kernel against the batch path ------------------------------------------------

@_settings()
@given(problem=networks(max_layers=3, work=WORK // 64), momentum=st.sampled_from([0.0, 0.9]),
       nesterov=st.booleans(), l2=st.sampled_from([0.0, 0.01]))
def test_the_online_kernel_is_the_batch_path_with_batches_of_one(problem, momentum, nesterov,
                                                                  l2):
    """loop_online's fused epoch (two layouts of the weights, sweeps fused across samples)
    computes what loop._epoch_batch computes for batches of one sample, bit for bit:
    parameters, velocity, update count and every statistic."""
    net, X, Y, sw = problem
    nesterov = nesterov and momentum > 0
    trainer = fastbp.Trainer(net, schedule="online", learning_rate=0.05, momentum=momentum,
                             nesterov=nesterov, l2=l2, seed=0)
    order = np.random.default_rng(1).permutation(X.shape[0]).astype(np.int64)
    if len(sw):
        sw[order[0]] = 0  # a sample of weight 0 makes no update
    units, dtype = int(net._sizes.sum()), net.dtype
    results = []
    for fused in (True, False):
        params, state, steps = net.params.copy(), trainer.state.copy(), np.zeros(1, np.int64)
        A, Dl = np.zeros(2 * units, dtype), np.zeros(2 * units, dtype)
        stats = np.zeros(4)
        hyper = trainer.hyperparameters(0.05)
        if fused:
            loop._epoch_online(params, state, steps, A, Dl, X, Y, sw, order, net._sizes,
                               net.act_codes, net.loss_code, hyper, net.bias, stats)
        else:
            loop._epoch_batch(None, params, state, steps, np.zeros_like(params), A, Dl,
                              np.zeros(2), np.zeros((2, Y.shape[1]), dtype),
                              np.zeros(2 if len(sw) else 0, dtype), X, Y, sw, order, 1,
                              net._sizes, net.act_codes, net.loss_code, codes.SGD, hyper,
                              net.bias, stats, None, np.empty_like(params))
        results.append((params, state, steps[0], stats))
    (p1, s1, t1, st1), (p2, s2, t2, st2) = results
    what = f"{net!r}, momentum={momentum}, nesterov={nesterov}, l2={l2}, weights={len(sw) > 0}"
    np.testing.assert_array_equal(p1, p2, err_msg=what)
    np.testing.assert_array_equal(s1, s2, err_msg=what)
    assert t1 == t2, what
    np.testing.assert_array_equal(st1, st2, err_msg=what)


# -- the shapes that once raced ----------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_wide_layers_at_the_default_thread_count_are_exact(dtype):
    """The product that raced: layers of more than 256 inputs, not a multiple of 256, at
    the default thread count, on 8192 rows. Every call gives the plain loops' bits."""
    net = fastbp.Network([300, 256, 10], dtype=dtype, seed=0)
    X = np.random.default_rng(0).normal(size=(8192, 300)).astype(dtype)
    outs = [net.forward(X) for _ in range(3)]
    rows = 1024
    A0, _, _ = _plain(net, X[:rows], np.zeros((rows, 10), dtype), np.empty(0, dtype))
    off = loop_layers.block_offset(net._sizes, 2, rows)
    first = A0[off:off + rows * 10].reshape(rows, 10)
    for out in outs:
        np.testing.assert_array_equal(out, outs[0])
        np.testing.assert_array_equal(out[:rows], first)
