"""Network: the public surface, input checks, persistence."""
import numpy as np
import pytest

import fastbp

from ._util import data


def test_parameters_are_views_of_one_buffer():
    net = fastbp.Network([3, 5, 2], seed=0)
    assert [W.shape for W in net.weights] == [(5, 3), (2, 5)]
    assert [b.shape for b in net.biases] == [(5,), (2,)]
    assert net.n_params == 5 * 4 + 2 * 6
    assert net.params.dtype == np.float32
    net.weights[1][0, 4] = 7.0
    net.biases[0][2] = -1.0
    assert net.params[5 * 3 + 5 + 4] == 7.0
    assert net.params[5 * 3 + 2] == -1.0
    assert all(np.shares_memory(W, net.params) for W in net.weights)


def test_seeded_initialization():
    a = fastbp.Network([4, 6, 3], activations=["relu", "identity"], seed=1)
    b = fastbp.Network([4, 6, 3], activations=["relu", "identity"], seed=1)
    c = fastbp.Network([4, 6, 3], activations=["relu", "identity"], seed=2)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)
    assert not np.any(a.biases[0]) and not np.any(a.biases[1])
    limit = np.sqrt(6 / (6 + 3))  # Glorot uniform on the identity layer
    assert np.abs(a.weights[1]).max() <= limit


def test_forward_shapes_and_one_sample():
    net = fastbp.Network([3, 4, 2], seed=0, dtype="float64")
    X, _ = data(5, 3, 2)
    out = net.forward(X)
    assert out.shape == (5, 2) and out.dtype == np.float64
    np.testing.assert_array_equal(net.forward(X[2]), out[2])
    # Integer inputs are converted to the network's dtype, not truncated.
    np.testing.assert_allclose(net.forward([[1, 2, 3]]), net.forward([[1.0, 2.0, 3.0]]))


def test_loss_definitions():
    net = fastbp.Network([2, 2], activations="identity", bias=False, dtype="float64")
    net.weights[0][...] = np.eye(2)
    X = np.array([[1.0, 2.0], [0.0, 0.0]])
    Y = np.array([[0.0, 2.0], [1.0, 1.0]])
    # mse: 0.5 * sum (y - a)^2 per sample, mean over samples: (0.5 * 1 + 0.5 * 2) / 2
    assert net.loss(X, Y) == pytest.approx(0.75)
    soft = fastbp.Network([2, 3], activations="softmax", loss="cross_entropy", bias=False,
                          dtype="float64")
    soft.weights[0][...] = 0  # uniform outputs: cost log(3) per sample
    assert soft.loss(X, [0, 2]) == pytest.approx(np.log(3))
    binary = fastbp.Network([2, 1], activations="sigmoid", loss="cross_entropy", bias=False,
                            dtype="float64")
    binary.weights[0][...] = 0  # outputs 0.5: cost log 2 whatever the target
    assert binary.loss(X, [1.0, 0.0]) == pytest.approx(np.log(2))


def test_labels_are_one_hot_encoded():
    net = fastbp.Network([3, 4], activations="softmax", loss="cross_entropy", seed=0)
    X, labels = data(6, 3, 4, labels=True)
    onehot = np.eye(4)[labels]
    for backend in ("loop", "vectorized"):
        assert net.loss(X, labels, backend=backend) == net.loss(X, onehot, backend=backend)


def test_bias_false_keeps_biases_out():
    net = fastbp.Network([3, 4, 2], bias=False, seed=0)
    X, Y = data(5, 3, 2)
    _, db = net.gradients(X, Y)
    assert not any(np.any(g) for g in db)
    fastbp.Trainer(net, learning_rate=1.0).fit(X, Y, epochs=3)
    assert not any(np.any(b) for b in net.biases)


@pytest.mark.parametrize("kwargs,message", [
    (dict(layer_sizes=[3]), "at least an input and an output"),
    (dict(layer_sizes=[3, 0, 2]), "positive integers"),
    (dict(layer_sizes=[3, 2.5]), "positive integers"),
    (dict(activations="swish"), "activation must be one of"),
    (dict(activations=["tanh"]), "activations has 1 names; the network has 2"),
    (dict(activations=["softmax", "sigmoid"]), "output layer only"),
    (dict(layer_sizes=[3, 1], activations="softmax"), "at least 2 outputs"),
    (dict(loss="hinge"), "loss must be one of"),
    (dict(activations="tanh", loss="cross_entropy"), "needs a 'softmax' or 'sigmoid' output"),
    (dict(dtype="float16"), "dtype must be 'float32' or 'float64'"),
    (dict(dtype="int32"), "dtype must be 'float32' or 'float64'"),
])
def test_bad_construction_is_rejected(kwargs, message):
    args = dict(layer_sizes=[3, 4, 2]) | kwargs
    with pytest.raises(ValueError, match=message):
        fastbp.Network(**args)


@pytest.mark.parametrize("X,Y,error,message", [
    (np.zeros((4, 5)), np.zeros((4, 2)), ValueError, "X has 5 columns; the network expects 3"),
    (np.zeros((0, 3)), np.zeros((0, 2)), ValueError, "X has no rows"),
    (np.zeros((2, 3, 1)), np.zeros((2, 2)), ValueError, "X must be 1-D .* or 2-D"),
    ([["a", "b", "c"]], np.zeros((1, 2)), TypeError, "X must hold real numbers"),
    (np.array([[1.0, np.nan, 0.0]]), np.zeros((1, 2)), ValueError, "X contains NaN or infinite"),
    (np.array([[1e39, 0.0, 0.0]]), np.zeros((1, 2)), ValueError, "after conversion to float32"),
    (np.zeros((4, 3)), np.zeros((4, 3)), ValueError, r"Y must have shape \(4, 2\)"),
    (np.zeros((4, 3)), np.zeros((5, 2)), ValueError, r"Y must have shape \(4, 2\)"),
    (np.zeros((1, 3)), [[np.inf, 0.0]], ValueError, "Y contains NaN or infinite"),
    (np.zeros((2, 3)), [0, 1], ValueError, r"Y must have shape \(2, 2\)"),
])
def test_bad_data_is_rejected(X, Y, error, message):
    net = fastbp.Network([3, 4, 2], seed=0)
    with pytest.raises(error, match=message):
        net.gradients(X, Y)


@pytest.mark.parametrize("Y,message", [
    ([0, 4], r"labels outside 0..3"),
    ([0.5, 1.0], "integer class labels"),
    ([0, 1, 2], "Y has 3 labels; X has 2 rows"),
    ([[0.0, 0.0, 1.5, 0.0], [1.0, 0.0, 0.0, 0.0]], r"must lie in \[0, 1\]"),
])
def test_bad_targets_for_softmax(Y, message):
    net = fastbp.Network([3, 4], activations="softmax", loss="cross_entropy", seed=0)
    with pytest.raises(ValueError, match=message):
        net.loss(np.zeros((2, 3)), Y)


def test_unknown_backend():
    net = fastbp.Network([3, 2], seed=0)
    with pytest.raises(ValueError, match="backend must be one of"):
        net.forward(np.zeros(3), backend="gpu")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip(tmp_path, dtype):
    net = fastbp.Network([3, 5, 4, 2], activations=["relu", "linear", "sigmoid"],
                         loss="cross_entropy", dtype=dtype, seed=3, bias=False)
    path = tmp_path / "net.npz"
    net.save(path)
    back = fastbp.Network.load(path)
    assert back.layer_sizes == net.layer_sizes
    assert back.activations == ["relu", "identity", "sigmoid"]
    assert back.loss_name == "cross_entropy" and back.bias is False
    assert back.dtype == net.dtype
    np.testing.assert_array_equal(back.params, net.params)
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"], "temporary file left behind"


def test_save_replaces_atomically(tmp_path, monkeypatch):
    net = fastbp.Network([3, 2], seed=0)
    path = tmp_path / "net.npz"
    net.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        fastbp.Network([3, 2], seed=1).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]


def test_load_rejects_truncated_corrupt_and_foreign_files(tmp_path):
    net = fastbp.Network([3, 5, 2], seed=0)
    good = tmp_path / "net.npz"
    net.save(good)
    blob = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(blob[:len(blob) // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    mismatched = tmp_path / "mismatched.npz"
    state = dict(np.load(good))
    state["params"] = state["params"][:-1]
    np.savez(mismatched, **state)
    for path in (truncated, garbage, foreign, mismatched):
        with pytest.raises(ValueError, match="not a (readable|valid) fastbp network file"):
            fastbp.Network.load(path)
    with pytest.raises(FileNotFoundError):
        fastbp.Network.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("activations", [["tanh", "softmax"], ["relu", "sigmoid"],
                                         ["sigmoid", "identity"]])
def test_forward_on_a_few_rows_takes_the_lean_path_and_gives_the_same_numbers(
        activations, dtype, monkeypatch):
    from fastbp import network
    from fastbp.kernels import loop_layers
    net = fastbp.Network([7, 5, 3], activations=activations, dtype=dtype, seed=0)
    net.params[:] = np.random.default_rng(1).normal(size=net.params.shape)
    X, _ = data(network.FEW_ROWS + 1, 7, 3, seed=2, dtype=dtype)
    calls = []
    real = loop_layers.forward_few
    monkeypatch.setattr(loop_layers, "forward_few", lambda *a: calls.append(a[0].shape) or real(*a))
    checked = net.forward(X.tolist())  # a list: the checked path, whatever the rows
    assert calls == []
    for n in (1, 2, network.FEW_ROWS):
        np.testing.assert_array_equal(net.forward(X[:n]), checked[:n])
    np.testing.assert_array_equal(net.forward(X[0]), checked[0])  # one 1-D row
    assert calls == [(1, 7), (2, 7), (network.FEW_ROWS, 7), (1, 7)]
    # More rows, another dtype, a strided view, input scaling: the checked path.
    np.testing.assert_array_equal(net.forward(X), checked)
    other = X[:2].astype(np.float64 if dtype == "float32" else np.float32)
    np.testing.assert_allclose(net.forward(other), checked[:2], rtol=1e-5)
    np.testing.assert_array_equal(net.forward(np.asfortranarray(X[:3])), checked[:3])
    assert len(calls) == 4
    bad = X[:2].copy()
    bad[1, 4] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values"):
        net.forward(bad)  # refused by the lean path, then named by the checked one
    assert len(calls) == 5
    with pytest.raises(ValueError):
        net.forward(X[:2, :6].copy())
    net.fit_input_scaling(X)
    net.forward(X[:2])
    assert len(calls) == 5


@pytest.mark.parametrize("kw", [dict(activations=["tanh", "softmax"], loss="cross_entropy"),
                                dict(activations="relu", dtype="float64", bias=False)])
def test_fresh_makes_what_the_constructor_makes_with_that_seed(kw):
    made = fastbp.Network([5, 4, 3], seed=7, **kw)
    other = fastbp.Network([5, 4, 3], seed=1, **kw)
    other.fit_input_scaling(np.random.default_rng(0).normal(size=(20, 5)))
    fresh = other.fresh(7)
    assert vars(fresh).keys() == vars(made).keys()
    for name, value in vars(made).items():
        got = vars(fresh)[name]
        assert type(got) is type(value), name
        assert np.array_equal(got, value) if isinstance(value, np.ndarray) else got == value
    # Nothing shared with the template: writing one leaves the other as it was.
    fresh.params[:] = 0
    fresh.activations[0] = "sigmoid"
    assert other.params.any() and other.activations[0] == made.activations[0]
