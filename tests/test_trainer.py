"""Trainer: schedule equivalences, optimizer arithmetic, history, divergence, threads."""
import numpy as np
import pytest

import fastbp

from ._util import assert_close, data, reference_backend
from .test_gradients import HIDDEN, OUTPUT_LOSS

def _net(dtype="float64", seed=0, sizes=(3, 5, 4, 2), hidden="tanh", output="sigmoid",
         loss="mse"):
    return fastbp.Network(list(sizes), activations=[hidden] * (len(sizes) - 2) + [output],
                          loss=loss, dtype=dtype, seed=seed)


def _copy(net):
    twin = _net(net.dtype, sizes=net.layer_sizes)
    twin.params[...] = net.params
    return twin


OPTIONS = dict(learning_rate=0.3, momentum=0.9, l2=0.01)


@pytest.mark.parametrize("schedule,batch_size,batches", [
    ("online", 1, [[k] for k in range(7)]),
    ("minibatch", 3, [[0, 1, 2], [3, 4, 5], [6]]),  # the last batch is shorter
    ("fullbatch", 1, [list(range(7))]),
])
def test_epoch_equals_sequence_of_steps(schedule, batch_size, batches, backend, dtype):
    X, Y = data(7, 3, 2, seed=1, dtype=dtype)
    net = _net(dtype)
    twin = _copy(net)
    history = fastbp.Trainer(net, schedule=schedule, batch_size=batch_size, shuffle=False,
                             backend=backend, **OPTIONS).fit(X, Y, epochs=1)
    stepper = fastbp.Trainer(twin, backend=backend, **OPTIONS)
    costs = [stepper.step(X[rows], Y[rows]) * len(rows) for rows in batches]
    assert_close(net.params, twin.params, dtype, f"{schedule} epoch vs steps, backend={backend}")
    assert_close(history.loss[0], sum(costs) / 7, dtype, f"{schedule} history.loss")


@pytest.mark.parametrize("schedule", ["online", "minibatch", "fullbatch"])
def test_backends_train_alike(schedule, backend, dtype):
    X, labels = data(23, 3, 4, seed=2, dtype=dtype, labels=True)
    ref = reference_backend(backend)
    results = []
    for name in (backend, ref):
        net = _net(dtype, sizes=(3, 6, 4), hidden="sigmoid", output="softmax",
                   loss="cross_entropy")
        trainer = fastbp.Trainer(net, schedule=schedule, batch_size=5, seed=7, backend=name,
                                 nesterov=True, **OPTIONS)
        results.append((net.params, trainer.fit(X, labels, epochs=3).loss))
    (p_got, h_got), (p_ref, h_ref) = results
    assert_close(p_got, p_ref, dtype, f"params after 3 {schedule} epochs, {backend} vs {ref}")
    assert_close(h_got, h_ref, dtype, f"history.loss, {schedule}, {backend} vs {ref}")


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_and_l2_match_hand_computation(nesterov, backend):
    X, Y = data(6, 3, 2, seed=3)
    net = _net()
    hand = _copy(net)
    trainer = fastbp.Trainer(net, backend=backend, nesterov=nesterov, **OPTIONS)
    lr, mu, l2 = OPTIONS["learning_rate"], OPTIONS["momentum"], OPTIONS["l2"]
    velocity = np.zeros_like(hand.params)
    for rows in ([0, 1, 2], [3, 4, 5], [0, 5]):
        trainer.step(X[rows], Y[rows])
        dW, db = hand.gradients(X[rows], Y[rows], backend="vectorized")
        g = np.concatenate([np.concatenate([(w_grad + l2 * W).ravel(), b_grad])
                            for w_grad, W, b_grad in zip(dW, hand.weights, db)])
        velocity = mu * velocity + g
        hand.params -= lr * (g + mu * velocity if nesterov else velocity)
    assert_close(net.params, hand.params, "float64", f"params, nesterov={nesterov}, {backend}")
    assert_close(trainer.velocity, velocity, "float64", f"velocity, {backend}")


def test_deltas_use_the_weights_of_the_forward_pass(backend):
    """The seeds' worked example, one step by hand: the hidden deltas must be computed
    with the output weights as they were before this step's update."""
    net = fastbp.Network([2, 2, 1], activations="sigmoid", bias=False, dtype="float64")
    net.weights[0][...] = W1 = np.array([[0.1, 0.8], [0.4, 0.6]])
    net.weights[1][...] = W2 = np.array([[0.3, 0.9]])
    x, y, lr = np.array([0.35, 0.9]), np.array([0.5]), 1.0
    h = 1 / (1 + np.exp(-W1 @ x))
    out = 1 / (1 + np.exp(-W2 @ h))
    d_out = (out - y) * out * (1 - out)
    d_hidden = (W2.T @ d_out) * h * (1 - h)  # old W2
    fastbp.Trainer(net, learning_rate=lr, backend=backend).step(x[None], y[None])
    np.testing.assert_allclose(net.weights[1], W2 - lr * np.outer(d_out, h), rtol=1e-12)
    np.testing.assert_allclose(net.weights[0], W1 - lr * np.outer(d_hidden, x), rtol=1e-12)
    assert round(float(out[0]), 2) == 0.69


@pytest.mark.parametrize("output,loss", OUTPUT_LOSS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_l2_step_is_gradient_of_penalized_objective(hidden, output, loss):
    """(w_before - w_after) / lr equals finite differences of loss + (l2/2) sum W^2."""
    net = _net(hidden=hidden, output=output, loss=loss)
    X, Y = data(5, 3, 2, seed=4)
    l2, lr = 0.05, 0.1

    def objective():
        return net.loss(X, Y, backend="vectorized") + l2 / 2 * sum((W ** 2).sum()
                                                                    for W in net.weights)
    numeric = np.empty_like(net.params)
    for k in range(net.n_params):
        keep = net.params[k]
        net.params[k] = keep + 1e-6
        up = objective()
        net.params[k] = keep - 1e-6
        numeric[k] = (up - objective()) / 2e-6
        net.params[k] = keep
    before = net.params.copy()
    fastbp.Trainer(net, learning_rate=lr, l2=l2, backend="vectorized").step(X, Y)
    np.testing.assert_allclose((before - net.params) / lr, numeric, rtol=1e-5, atol=1e-8)


def test_same_seed_same_weights(backend):
    X, Y = data(40, 3, 2, seed=5, dtype="float32")
    runs = []
    for seed in (11, 11, 12):
        net = _net("float32")
        fastbp.Trainer(net, batch_size=8, seed=seed, backend=backend).fit(X, Y, epochs=3)
        runs.append(net.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_history_semantics(backend):
    X, Y = data(20, 3, 2, seed=6)
    Xv, Yv = data(9, 3, 2, seed=7)
    net = _net()
    start_loss = net.loss(X, Y)
    trainer = fastbp.Trainer(net, schedule="fullbatch", learning_rate=0.5, backend=backend)
    history = trainer.fit(X, Y, epochs=4, validation_data=(Xv, Yv))
    assert history.epochs == 4 and len(history.val_loss) == 4 and len(history.seconds) == 4
    # Full batch: the epoch's loss is the loss at the weights the epoch started from.
    assert history.loss[0] == pytest.approx(start_loss, rel=1e-12)
    assert history.val_loss[-1] == pytest.approx(net.loss(Xv, Yv), rel=1e-12)
    assert history.loss == sorted(history.loss, reverse=True)
    assert history.best_epoch == int(np.argmin(history.val_loss)) and not history.stopped_early
    assert all(type(v) is float for v in history.loss + history.val_loss)


def test_divergence_raises_and_keeps_finite_weights(backend):
    X, Y = data(50, 3, 2, seed=8)
    Y = Y * 1e3
    net = _net(output="identity")
    with pytest.raises(FloatingPointError, match=r"epoch \d+: the loss is not finite"):
        fastbp.Trainer(net, schedule="online", learning_rate=50.0, seed=0, backend=backend).fit(
            X, Y, epochs=3)
    assert np.isfinite(net.params).all()


def test_early_stopping_restores_best_weights(backend):
    X, Y = data(30, 3, 2, seed=9)
    Xv, Yv = data(30, 3, 2, seed=10)
    net = _net()
    seen = []

    def record(epoch, history):
        seen.append(net.params.copy())
        return False
    history = fastbp.Trainer(net, learning_rate=2.0, momentum=0.9, backend=backend).fit(
        X, Y, epochs=60, validation_data=(Xv, Yv), patience=2, callback=record)
    assert history.stopped_early
    assert history.epochs == history.best_epoch + 3
    np.testing.assert_array_equal(net.params, seen[history.best_epoch])


def test_callback_can_stop_training():
    X, Y = data(10, 3, 2)
    history = fastbp.Trainer(_net()).fit(X, Y, epochs=50, callback=lambda e, h: e == 2)
    assert history.epochs == 3 and history.stopped_early


def test_progress_bar(capsys):
    X, Y = data(10, 3, 2)
    fastbp.Trainer(_net()).fit(X, Y, epochs=2, validation_data=(X, Y), progress=True)
    err = capsys.readouterr().err
    assert "100%" in err and "20.0/20.0" in err and "loss=" in err and "val_loss=" in err


@pytest.mark.parametrize("kwargs,message", [
    (dict(schedule="sgd"), "schedule must be one of"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(learning_rate=0.0), "learning_rate must be a finite number > 0"),
    (dict(learning_rate=float("nan")), "learning_rate must be a finite number"),
    (dict(momentum=1.0), "momentum must be a finite number >= 0.0 and < 1.0"),
    (dict(nesterov=True), "nesterov=True needs momentum > 0"),
    (dict(l2=-1.0), "l2 must be a finite number >= 0"),
    (dict(backend="fortran"), "backend must be one of"),
])
def test_bad_trainer_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fastbp.Trainer(_net(), **kwargs)


def test_bad_fit_arguments_leave_the_network_untouched():
    X, Y = data(10, 3, 2)
    net = _net()
    before = net.params.copy()
    trainer = fastbp.Trainer(net)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        trainer.fit(X, Y, epochs=0)
    with pytest.raises(ValueError, match="validation_data must be a pair"):
        trainer.fit(X, Y, validation_data=X)
    with pytest.raises(ValueError, match="X has 4 columns"):
        trainer.fit(X, Y, validation_data=(np.zeros((3, 4)), Y[:3]))
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("schedule", ["minibatch", "fullbatch"])
def test_threads_give_bit_identical_results(schedule):
    """Threads split work only where writes are disjoint, so 1 and all threads agree exactly.
    The network is big enough that the threaded kernels run (loop_layers.PARALLEL_MIN_WORK)."""
    import numba
    from fastbp.kernels import loop_layers
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only: nothing to compare")
    X, labels = data(300, 64, 10, seed=11, dtype="float32", labels=True)
    assert 256 * 64 * 256 >= loop_layers.PARALLEL_MIN_WORK
    results = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        try:
            net = fastbp.Network([64, 256, 10], activations=["tanh", "softmax"],
                                 loss="cross_entropy", seed=0)
            fastbp.Trainer(net, schedule=schedule, batch_size=256, seed=0).fit(X, labels, epochs=2)
            results.append(net.params.copy())
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(results[0], results[1])


def test_threads_option_sets_numba_threads_for_the_fit_only():
    import numba
    X, labels = data(300, 64, 10, seed=11, dtype="float32", labels=True)
    before = numba.get_num_threads()
    results = []
    for threads in (1, None):
        net = fastbp.Network([64, 256, 10], activations=["tanh", "softmax"],
                             loss="cross_entropy", seed=0)
        fastbp.Trainer(net, schedule="fullbatch", seed=0, threads=threads).fit(X, labels, epochs=2)
        assert numba.get_num_threads() == before
        results.append(net.params.copy())
    np.testing.assert_array_equal(results[0], results[1])
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        fastbp.Trainer(_net(), threads=0)


def test_trainer_pickles_and_read_only_data_trains():
    import pickle
    X, Y = data(12, 3, 2, seed=12)
    trainer = fastbp.Trainer(_net(), momentum=0.5, seed=3)
    trainer.fit(X, Y, epochs=1)
    twin = pickle.loads(pickle.dumps(trainer))
    X.setflags(write=False)
    Y.setflags(write=False)
    trainer.fit(X, Y, epochs=1)
    twin.fit(X, Y, epochs=1)
    np.testing.assert_array_equal(trainer.net.params, twin.net.params)


def test_auto_backend_picks_and_says_why():
    """backend="auto" picks at fit time (here no GPU, or only the simulator: loop) and says
    which backend and why, in its attributes and its repr; the fit is the loop fit's."""
    X, y = data(40, 3, 4, seed=8, labels=True)
    results = []
    for backend in ("auto", "loop"):
        net = fastbp.Network([3, 5, 4], activations=["tanh", "softmax"], loss="cross_entropy",
                             seed=0)
        trainer = fastbp.Trainer(net, backend=backend, seed=0)
        trainer.fit(X, y, epochs=2)
        results.append((net.params.copy(), trainer))
    auto = results[0][1]
    assert auto.backend == "auto" and auto.backend_used == "loop"
    assert auto.backend_reason.startswith("auto: loop, ")
    assert "backend='auto' (auto: loop, " in repr(auto)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    with pytest.raises(ValueError, match="backend"):
        fastbp.Trainer(results[1][1].net, backend="gpu")


@pytest.mark.parametrize("optimizer,options", [("sgd", {}), ("sgd", dict(momentum=0.9)),
                                               ("adam", {}), ("rprop", {})])
def test_step_on_a_few_rows_takes_the_lean_path_and_gives_the_same_numbers(
        optimizer, options, dtype, monkeypatch):
    from fastbp import network
    from fastbp.kernels import loop
    calls = []
    real = loop.step_few
    monkeypatch.setattr(loop, "step_few", lambda *a: calls.append(a[0].shape[0]) or real(*a))
    runs = []
    for lean in (True, False):
        net = fastbp.Network([6, 5, 3], activations=["tanh", "softmax"],
                             loss="cross_entropy", dtype=dtype, seed=0)
        tr = fastbp.Trainer(net, optimizer=optimizer, learning_rate=0.05, **options)
        rng = np.random.default_rng(1)
        costs = []
        for n in (1, 3, network.FEW_ROWS, 1):
            X = rng.random((n, 6)).astype(dtype)
            Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, n)]
            costs.append(tr.step(X, Y) if lean else tr.step(X.tolist(), Y.tolist()))
        runs.append((net.params.copy(), tr.state.copy(), tr.steps.copy(), costs))
    assert calls == [1, 3, network.FEW_ROWS, 1]  # the lists took the checked path
    (p0, s0, t0, c0), (p1, s1, t1, c1) = runs
    np.testing.assert_array_equal(p0, p1)
    np.testing.assert_array_equal(s0, s1)
    np.testing.assert_array_equal(t0, t1)
    assert c0 == c1


def test_step_lean_path_leaves_bad_values_and_divergence_to_the_checked_path(monkeypatch):
    from fastbp.kernels import loop
    calls = []
    real = loop.step_few
    monkeypatch.setattr(loop, "step_few", lambda *a: calls.append(1) or real(*a))
    net = fastbp.Network([3, 4, 2], activations=["tanh", "sigmoid"], loss="cross_entropy",
                         seed=0)
    tr = fastbp.Trainer(net, learning_rate=0.1)
    X, Y = np.ones((2, 3), np.float32), np.full((2, 2), 0.5, np.float32)
    bad_X = X.copy()
    bad_X[1, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        tr.step(bad_X, Y)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        tr.step(X, Y * 3)
    assert len(calls) == 2 and tr.steps[0] == 0
    tr.step(X, np.array([[1, 0], [0, 1]], np.int64))  # another dtype: the checked path
    tr.step(X, Y, sample_weight=[1.0, 2.0])  # weights: the checked path
    assert len(calls) == 2 and tr.steps[0] == 2
    # Divergence: the lean call is put back, and the checked path raises and puts back,
    # as it does for data that never takes the lean path.
    results = []
    for lean in (True, False):
        big = fastbp.Network([3, 4, 2], activations=["tanh", "identity"], seed=0)
        tr = fastbp.Trainer(big, learning_rate=1e30)
        x, y = np.full((1, 3), 1e20, np.float32), np.full((1, 2), 1e30, np.float32)
        with pytest.raises(FloatingPointError, match="training diverged") as info:
            for _ in range(3):
                tr.step(x, y) if lean else tr.step(x.tolist(), y.tolist())
        results.append((str(info.value), big.params.copy(), tr.state.copy(), tr.steps.copy()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1:], results[1][1:]):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(results[0][1]).all()
