"""Per-sample weights: the weighted mean cost and its gradient, checked against finite
differences, on every backend, and against what weights mean (weight 2 = the row twice,
weight 0 = the row dropped)."""
import numpy as np
import pytest

import fastbp

from ._util import assert_close, data, reference_backend
from .test_gradients import HIDDEN, OUTPUT_LOSS, _net


def _weights(n, seed=0):
    w = np.random.default_rng(seed).uniform(0.0, 3.0, n)
    w[1] = 0.0  # a sample that must not count
    return w


@pytest.mark.parametrize("output,loss", OUTPUT_LOSS)
@pytest.mark.parametrize("hidden", HIDDEN[:2])
def test_weighted_gradients_match_finite_differences(hidden, output, loss):
    net = _net(hidden, output, loss, sizes=[3, 4, 2])
    X, Y = data(6, 3, 2, seed=3)
    w = _weights(6)
    dW, db = net.gradients(X, Y, backend="vectorized", sample_weight=w)
    analytic = np.concatenate([np.concatenate([g.ravel(), gb]) for g, gb in zip(dW, db)])
    numeric = np.empty_like(net.params)
    for k in range(net.n_params):
        keep = net.params[k]
        net.params[k] = keep + 1e-6
        up = net.loss(X, Y, backend="vectorized", sample_weight=w)
        net.params[k] = keep - 1e-6
        numeric[k] = (up - net.loss(X, Y, backend="vectorized", sample_weight=w)) / 2e-6
        net.params[k] = keep
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8,
                               err_msg=f"weighted gradient vs finite differences, {hidden}/{output}")


def test_weighted_loss_and_gradient_are_weighted_means(backend):
    net = _net("tanh", "sigmoid", "cross_entropy", sizes=[3, 4, 2])
    X, Y = data(5, 3, 2, seed=4)
    w = np.array([1.0, 2.0, 0.0, 0.5, 1.5])
    per_sample = [net.loss(X[s:s + 1], Y[s:s + 1]) for s in range(5)]
    assert net.loss(X, Y, backend=backend, sample_weight=w) == pytest.approx(
        np.dot(w, per_sample) / w.sum(), rel=1e-12)
    grads = [np.concatenate([g.ravel() for g in net.gradients(X[s:s + 1], Y[s:s + 1])[0]])
             for s in range(5)]
    dW, _ = net.gradients(X, Y, backend=backend, sample_weight=w)
    assert_close(np.concatenate([g.ravel() for g in dW]), np.dot(w, grads) / w.sum(), "float64",
                 f"weighted mean gradient, backend={backend}")


@pytest.mark.parametrize("schedule,optimizer", [("minibatch", "sgd"), ("fullbatch", "rprop"),
                                                ("minibatch", "adam"), ("online", "sgd")])
def test_weighted_training_agrees_across_backends(schedule, optimizer, backend, dtype):
    X, labels = data(17, 3, 4, seed=5, dtype=dtype, labels=True)
    w = _weights(17, seed=1)
    ref = reference_backend(backend)
    results = []
    for name in (backend, ref):
        net = fastbp.Network([3, 5, 4], activations=["tanh", "softmax"], loss="cross_entropy",
                             dtype=dtype, seed=0)
        trainer = fastbp.Trainer(net, schedule=schedule, batch_size=4, optimizer=optimizer,
                                 learning_rate=0.05, l2=0.01, seed=2, backend=name)
        history = trainer.fit(X, labels, epochs=2, sample_weight=w)
        results.append((net.params, history.loss, int(trainer.steps[0])))
    (p, h, t), (p_ref, h_ref, t_ref) = results
    what = f"{schedule}/{optimizer}, weighted, {backend} vs {ref}"
    assert_close(p, p_ref, dtype, f"params, {what}")
    assert_close(h, h_ref, dtype, f"history.loss, {what}")
    assert t == t_ref


def test_full_batch_weight_two_is_the_row_twice_and_zero_is_the_row_dropped(backend):
    X, Y = data(6, 3, 2, seed=6)
    w = np.array([2.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    rows = [0, 0, 2, 3, 4, 5]
    nets = []
    for weighted in (True, False):
        net = _net("tanh", "sigmoid", "mse", sizes=[3, 4, 2])
        trainer = fastbp.Trainer(net, schedule="fullbatch", learning_rate=0.3, momentum=0.5,
                                 l2=0.01, backend=backend)
        if weighted:
            history = trainer.fit(X, Y, epochs=3, sample_weight=w)
        else:
            history = trainer.fit(X[rows], Y[rows], epochs=3)
        nets.append((net.params, history.loss))
    assert_close(nets[0][0], nets[1][0], "float64", f"params, backend={backend}")
    assert_close(nets[0][1], nets[1][1], "float64", f"history.loss, backend={backend}")


def test_online_weight_zero_skips_the_sample(backend):
    X, Y = data(5, 3, 2, seed=7)
    w = np.array([1.0, 0.0, 3.0, 1.0, 0.5])
    keep = [0, 2, 3, 4]
    nets = []
    for weighted in (True, False):
        net = _net("tanh", "sigmoid", "mse", sizes=[3, 4, 2])
        trainer = fastbp.Trainer(net, schedule="online", shuffle=False, learning_rate=0.3,
                                 backend=backend)
        if weighted:
            trainer.fit(X, Y, epochs=1, sample_weight=w)
        else:
            trainer.fit(X[keep], Y[keep], epochs=1)
        nets.append((net.params, int(trainer.steps[0])))
    assert_close(nets[0][0], nets[1][0], "float64", f"online, weight 0, backend={backend}")
    assert nets[0][1] == nets[1][1] == 4


@pytest.mark.parametrize("sample_weight,error,message", [
    ([1.0, -1.0, 1.0, 1.0], ValueError, "must not be negative"),
    ([0.0, 0.0, 0.0, 0.0], ValueError, "zero everywhere"),
    ([1.0, 1.0], ValueError, r"shape \(4,\)"),
    ([1.0, np.nan, 1.0, 1.0], ValueError, "NaN or infinite"),
    (["a", "b", "c", "d"], TypeError, "real numbers"),
])
def test_bad_sample_weight_is_rejected_before_training(sample_weight, error, message):
    X, Y = data(4, 3, 2, seed=8)
    net = _net("tanh", "sigmoid", "mse", sizes=[3, 4, 2])
    before = net.params.copy()
    with pytest.raises(error, match=message):
        fastbp.Trainer(net).fit(X, Y, epochs=1, sample_weight=sample_weight)
    np.testing.assert_array_equal(net.params, before)
