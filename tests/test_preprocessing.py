"""Input scaling travels with the network: applied to every input it takes, saved and
loaded with it, fitted on training data only."""
import numpy as np
import pytest

import fastbp
from fastbp.preprocessing import InputScaling


def _raw(n=200, seed=0):
    """Inputs on very different scales (as raw real data has), labels from a linear rule."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * [1000.0, 0.001, 1.0, 50.0] + [5e4, 0.0, -3.0, 100.0]
    y = ((X[:, 0] - 5e4) / 1000 + (X[:, 1]) / 0.001 > 0).astype(np.int64)
    return X, y


def test_fit_standardizes_and_maps_constant_columns_to_zero():
    X = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    s = InputScaling.fit(X)
    np.testing.assert_allclose(s.apply(X, np.float64).mean(axis=0), [0, 0], atol=1e-15)
    np.testing.assert_allclose(s.apply(X, np.float64).std(axis=0), [1, 0])
    with pytest.raises(ValueError, match="scale finite and > 0"):
        InputScaling([0.0], [0.0])
    with pytest.raises(ValueError, match="NaN"):
        InputScaling.fit([[np.nan]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_entry_point_applies_the_scaling(dtype):
    X, y = _raw()
    net = fastbp.Network([4, 8, 2], activations=["tanh", "softmax"], loss="cross_entropy",
                         dtype=dtype, seed=0).fit_input_scaling(X)
    plain = fastbp.Network([4, 8, 2], activations=["tanh", "softmax"], loss="cross_entropy",
                           dtype=dtype, seed=0)
    Z = net.input_scaling.apply(X, np.float64)
    np.testing.assert_array_equal(net.forward(X), plain.forward(Z))
    np.testing.assert_array_equal(net.predict(X[:1]), plain.predict(Z[:1]))
    assert net.loss(X, y) == plain.loss(Z, y)
    for a, b in zip(net.gradients(X, y)[0], plain.gradients(Z, y)[0]):
        np.testing.assert_array_equal(a, b)
    t1 = fastbp.Trainer(net, seed=1, learning_rate=0.1)
    t2 = fastbp.Trainer(plain, seed=1, learning_rate=0.1)
    t1.fit(X, y, epochs=3, validation_data=(X, y))
    t2.fit(Z, y, epochs=3, validation_data=(Z, y))
    np.testing.assert_array_equal(net.params, plain.params)
    t1.step(X[:5], y[:5])
    t2.step(Z[:5], y[:5])
    np.testing.assert_array_equal(net.params, plain.params)


def test_raw_inputs_train_well_only_when_scaled():
    X, y = _raw(400)
    scores = {}
    for scaled in (False, True):
        net = fastbp.Network([4, 16, 2], activations=["tanh", "softmax"],
                             loss="cross_entropy", seed=0)
        if scaled:
            net.fit_input_scaling(X[:300])
        fastbp.Trainer(net, learning_rate=0.1, momentum=0.9, seed=0).fit(X[:300], y[:300],
                                                                          epochs=30)
        scores[scaled] = net.score(X[300:], y[300:])
    assert scores[True] > 0.95 > scores[False]


def test_save_and_load_keep_the_scaling(tmp_path):
    X, y = _raw()
    net = fastbp.Network([4, 3, 2], activations=["tanh", "softmax"], loss="cross_entropy",
                         seed=0).fit_input_scaling(X)
    trainer = fastbp.Trainer(net, seed=0)
    trainer.fit(X, y, epochs=2)
    net.save(tmp_path / "net.npz")
    trainer.save(tmp_path / "trainer.npz")
    for loaded in (fastbp.Network.load(tmp_path / "net.npz"),
                   fastbp.Trainer.load(tmp_path / "trainer.npz").net):
        assert loaded.input_scaling == net.input_scaling
        np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    plain = fastbp.Network([4, 3, 2], activations=["tanh", "softmax"], loss="cross_entropy")
    plain.save(tmp_path / "plain.npz")
    assert fastbp.Network.load(tmp_path / "plain.npz").input_scaling is None


def test_a_scaling_of_another_width_is_refused():
    net = fastbp.Network([4, 2])
    with pytest.raises(ValueError, match="3 inputs; this network has 4"):
        net.input_scaling = InputScaling.fit(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="InputScaling"):
        net.input_scaling = (0, 1)


def test_validation_early_stopping_and_divergence_see_the_data_scaled_once():
    """fit's validation loss, saturation check and roll-back evaluate the network with
    Network.loss, which scales; given data scaled already they would scale it twice."""
    X, y = _raw()
    net = fastbp.Network([4, 8, 2], activations=["tanh", "softmax"], loss="cross_entropy",
                         seed=0).fit_input_scaling(X)
    history = fastbp.Trainer(net, seed=0).fit(X, y, epochs=5, validation_data=(X, y))
    assert history.val_loss[-1] == net.loss(X, y)
