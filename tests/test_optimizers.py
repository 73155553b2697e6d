"""How much to update: Adam, RPROP, Nesterov against hand-written NumPy (and PyTorch where
installed), learning-rate schedules, and resuming from a saved trainer."""
import numpy as np
import pytest

import fastbp
from fastbp import schedules
from fastbp.datasets import load_digits

from ._util import assert_close, data, reference_backend

def _net(seed=0, dtype="float64", bias=True):
    return fastbp.Network([3, 5, 2], activations=["tanh", "sigmoid"], loss="mse",
                          dtype=dtype, seed=seed, bias=bias)


def _flat_gradient(net, X, Y, l2):
    """Mean gradient plus the L2 term on the weights, laid out like net.params."""
    dW, db = net.gradients(X, Y, backend="vectorized")
    return np.concatenate([np.concatenate([(g + l2 * W).ravel(), gb])
                           for g, W, gb in zip(dW, net.weights, db)])


def _bias_mask(net):
    mask = np.zeros(net.n_params, bool)
    for b in net.unflatten(mask)[1]:
        b[...] = True
    return mask


def _hand_adam(w, g, m, v, t, lr, b1, b2, eps):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    w = w - lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)
    return w, m, v


def _hand_rprop(w, g, prev, step, eta_minus, eta_plus, lo, hi):
    s = g * prev
    step = np.clip(step * np.where(s > 0, eta_plus, np.where(s < 0, eta_minus, 1.0)), lo, hi)
    g = np.where(s < 0, 0.0, g)
    return w - np.sign(g) * step, g, step


def _hand_nesterov(w, g, v, lr, mu):
    v = mu * v + g
    return w - lr * (g + mu * v), v


BATCHES = ([0, 1, 2], [3, 4, 5], [0, 5], [1, 2, 3, 4])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("optimizer", ["adam", "rprop", "nesterov"])
def test_optimizers_match_hand_computation_step_for_step(optimizer, bias, backend):
    X, Y = data(6, 3, 2, seed=1)
    net, hand = _net(bias=bias), _net(bias=bias)
    lr, l2 = 0.05, 0.01
    options = dict(nesterov=True, momentum=0.9) if optimizer == "nesterov" else {}
    trainer = fastbp.Trainer(net, optimizer="sgd" if optimizer == "nesterov" else optimizer,
                             learning_rate=lr, l2=l2, backend=backend, **options)
    s0 = np.zeros(net.n_params)
    s1 = np.full(net.n_params, lr) if optimizer == "rprop" else np.zeros(net.n_params)
    frozen = _bias_mask(net) if not bias else np.zeros(net.n_params, bool)
    for t, rows in enumerate(BATCHES, start=1):
        trainer.step(X[rows], Y[rows])
        g = _flat_gradient(hand, X[rows], Y[rows], l2)
        w = hand.params.copy()
        if optimizer == "adam":
            new, s0_new, s1_new = _hand_adam(w, g, s0, s1, t, lr, 0.9, 0.999, 1e-8)
        elif optimizer == "rprop":
            new, s0_new, s1_new = _hand_rprop(w, g, s0, s1, 0.5, 1.2, 1e-6, 50.0)
        else:
            new, s0_new = _hand_nesterov(w, g, s0, lr, 0.9)
            s1_new = s1
        hand.params[...] = np.where(frozen, w, new)
        s0, s1 = np.where(frozen, s0, s0_new), np.where(frozen, s1, s1_new)
        assert_close(net.params, hand.params, "float64", f"{optimizer} params after step {t}")
        assert_close(trainer.state[0], s0, "float64", f"{optimizer} state[0] after step {t}")
        assert_close(trainer.state[1], s1, "float64", f"{optimizer} state[1] after step {t}")
    assert trainer.steps[0] == len(BATCHES)


@pytest.mark.parametrize("optimizer", ["adam", "rprop", "nesterov"])
def test_optimizers_match_pytorch(optimizer):
    torch = pytest.importorskip("torch")
    X, Y = data(6, 3, 2, seed=2)
    net = _net()
    lr, l2 = 0.05, 0.01
    params = [torch.tensor(p.copy(), requires_grad=True)
              for pair in zip(net.weights, net.biases) for p in pair]
    groups = [{"params": params[0::2], "weight_decay": l2},  # weights
              {"params": params[1::2], "weight_decay": 0.0}]  # biases: no L2
    opt = {"adam": lambda: torch.optim.Adam(groups, lr=lr),
           "rprop": lambda: torch.optim.Rprop(groups, lr=lr),  # no weight_decay in old torch
           "nesterov": lambda: torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)}
    if optimizer == "rprop":
        for group in groups:
            group.pop("weight_decay")
        l2 = 0.0
    torch_opt = opt[optimizer]()
    trainer = fastbp.Trainer(net, optimizer="sgd" if optimizer == "nesterov" else optimizer,
                             learning_rate=lr, l2=l2,
                             **(dict(nesterov=True, momentum=0.9) if optimizer == "nesterov" else {}))
    mirror = _net()
    for rows in BATCHES:
        mirror.params[...] = np.concatenate([p.detach().numpy().ravel() for p in params])
        dW, db = mirror.gradients(X[rows], Y[rows], backend="vectorized")
        for p, g in zip(params, [t for pair in zip(dW, db) for t in pair]):
            p.grad = torch.tensor(g.copy())
        torch_opt.step()
        trainer.step(X[rows], Y[rows])
    theirs = np.concatenate([p.detach().numpy().ravel() for p in params])
    np.testing.assert_allclose(net.params, theirs, rtol=1e-10, atol=1e-12,
                               err_msg=f"{optimizer} vs torch.optim")


@pytest.mark.parametrize("optimizer,schedule", [("adam", "minibatch"), ("adam", "online"),
                                                ("rprop", "fullbatch")])
def test_backends_agree_on_every_schedule(optimizer, schedule, backend, dtype):
    X, labels = data(23, 3, 4, seed=3, dtype=dtype, labels=True)
    ref = reference_backend(backend)
    results = []
    for name in (backend, ref):
        net = fastbp.Network([3, 6, 4], activations=["sigmoid", "softmax"],
                             loss="cross_entropy", dtype=dtype, seed=0)
        trainer = fastbp.Trainer(net, schedule=schedule, batch_size=5, optimizer=optimizer,
                                 learning_rate=0.01, seed=1, backend=name)
        trainer.fit(X, labels, epochs=3)
        results.append((net.params, trainer.state, int(trainer.steps[0])))
    (p, s, t), (p_ref, s_ref, t_ref) = results
    assert_close(p, p_ref, dtype, f"params, {optimizer}/{schedule}: {backend} vs {ref}")
    assert_close(s, s_ref, dtype, f"{optimizer} state, {schedule}: {backend} vs {ref}")
    assert t == t_ref


def test_rprop_beats_plain_full_batch_gradient_descent_on_digits():
    X, y = load_digits()
    losses = {}
    for optimizer, lr in (("sgd", 0.5), ("rprop", 0.01)):
        net = fastbp.Network([64, 32, 10], activations=["tanh", "softmax"],
                             loss="cross_entropy", seed=0)
        history = fastbp.Trainer(net, schedule="fullbatch", optimizer=optimizer,
                                 learning_rate=lr).fit(X, y, epochs=40)
        losses[optimizer] = history.loss[-1]
    assert losses["rprop"] < losses["sgd"], losses


def test_schedule_rates():
    assert schedules.Constant().rate(7, 0.1, []) == 0.1
    assert schedules.InverseScaling(decay=0.5, power=1.0).rate(2, 0.1, []) == pytest.approx(0.05)
    assert schedules.StepDecay(every=3, gamma=0.1).rate(7, 1.0, []) == pytest.approx(0.01)
    plateau = schedules.ReduceOnPlateau(factor=0.5, patience=1)
    losses = [1.0, 0.5, 0.6, 0.7, 0.4, 0.45, 0.5]
    # bad epochs: 0.6, 0.7 -> reduce after the second; 0.45, 0.5 -> reduce again
    assert [plateau.rate(e, 1.0, losses) for e in range(8)] == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25]


def test_schedule_text_form_and_errors():
    s = schedules.parse("invscaling:decay=0.1,power=0.25")
    assert isinstance(s, schedules.InverseScaling) and s.decay == 0.1 and s.power == 0.25
    assert schedules.from_dict(s.to_dict()).to_dict() == s.to_dict()
    assert isinstance(schedules.parse("step:every=5"), schedules.StepDecay)
    for bad in ("cosine", "step:every", "plateau:speed=2", "plateau:factor=2"):
        with pytest.raises(ValueError, match="lr_schedule|factor"):
            schedules.parse(bad)
    with pytest.raises(TypeError, match="lr_schedule must be"):
        fastbp.Trainer(_net(), lr_schedule=0.5)


def test_trainer_follows_its_schedule(backend):
    X, Y = data(20, 3, 2, seed=4)
    trainer = fastbp.Trainer(_net(), learning_rate=0.2, backend=backend,
                             lr_schedule=schedules.StepDecay(every=2, gamma=0.5))
    history = trainer.fit(X, Y, epochs=3)
    history2 = trainer.fit(X, Y, epochs=2)  # the epoch count carries over between fits
    assert history.learning_rate + history2.learning_rate == [0.2, 0.2, 0.1, 0.1, 0.05]
    assert trainer.epoch == 5


@pytest.mark.parametrize("optimizer,extra", [
    ("sgd", dict(momentum=0.9, lr_schedule="plateau:patience=0,factor=0.5")),
    ("adam", dict(lr_schedule="invscaling:decay=0.3")),
    ("rprop", dict(schedule="fullbatch"))])
def test_resume_from_save_equals_uninterrupted_training(tmp_path, optimizer, extra, backend):
    X, labels = data(40, 3, 4, seed=5, labels=True)
    Xv, labels_v = data(10, 3, 4, seed=6, labels=True)

    def make():
        net = fastbp.Network([3, 6, 4], activations=["relu", "softmax"], loss="cross_entropy",
                             dtype="float64", seed=0)
        return fastbp.Trainer(net, optimizer=optimizer, learning_rate=0.02, batch_size=8,
                              seed=9, backend=backend, **extra)
    straight = make()
    straight.fit(X, labels, epochs=6, validation_data=(Xv, labels_v))
    first = make()
    first.fit(X, labels, epochs=3, validation_data=(Xv, labels_v))
    path = tmp_path / "trainer.npz"
    first.save(path)
    resumed = fastbp.Trainer.load(path)
    assert resumed.optimizer == optimizer and resumed.epoch == 3
    resumed.fit(X, labels, epochs=3, validation_data=(Xv, labels_v))
    np.testing.assert_array_equal(resumed.net.params, straight.net.params)
    np.testing.assert_array_equal(resumed.state, straight.state)


def test_trainer_file_errors(tmp_path):
    net = _net()
    path = tmp_path / "net.npz"
    net.save(path)
    with pytest.raises(ValueError, match="not a valid fastbp trainer file"):
        fastbp.Trainer.load(path)
    fastbp.Trainer(net).save(tmp_path / "t.npz")
    assert fastbp.Network.load(tmp_path / "t.npz").layer_sizes == net.layer_sizes


@pytest.mark.parametrize("kwargs,message", [
    (dict(optimizer="lbfgs"), "optimizer must be one of"),
    (dict(optimizer="adam", momentum=0.9), "momentum applies to optimizer='sgd' only"),
    (dict(betas=(0.9, 1.0)), "betas must be a finite number"),
    (dict(betas=0.9), "betas must be a pair"),
    (dict(eps=0.0), "eps must be a finite number > 0"),
    (dict(etas=(1.5, 1.2)), r"etas must be \(decrease < 1, increase > 1\)"),
    (dict(step_sizes=(1.0, 0.1)), r"step_sizes must be \(smallest, largest\)"),
])
def test_bad_optimizer_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fastbp.Trainer(_net(), **kwargs)
