"""The FANN rival of ``fastbp bench`` (fastbp/bench/fann.py): weights mapped onto FANN's
connections, and FANN's training the same gradient descent as fastbp's. Skipped where the
FANN C library (apt-get install libfann2) is not installed."""
import ctypes
import ctypes.util

import numpy as np
import pytest

import fastbp
from fastbp.bench import fann as _fann

from ._util import data

TOL = {np.dtype("float32"): dict(rtol=1e-4, atol=1e-5),
       np.dtype("float64"): dict(rtol=1e-10, atol=1e-12)}


@pytest.fixture
def fann_lib(dtype):
    try:
        return _fann.load(dtype)
    except ImportError as exc:
        pytest.skip(str(exc))


def _pair(dtype, sizes=(3, 4, 2), seed=1, **kw):
    """A fastbp sigmoid/mse network with nonzero biases, and a FANN copy of it."""
    net = fastbp.Network(list(sizes), activations="sigmoid", loss="mse", dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for b in net.biases:
        b[...] = rng.uniform(-0.5, 0.5, b.shape)
    fnet = _fann.FannNet(sizes, dtype=dtype, **kw)
    fnet.set_params(net.weights, net.biases)
    return net, fnet


def _assert_params(fnet, net, dtype, what, tol=None):
    W, b = fnet.get_params()
    for k, (got, want) in enumerate(zip(W + b, net.weights + net.biases)):
        np.testing.assert_allclose(got, want, err_msg=f"{what}: parameter block {k}",
                                   **(tol or TOL[np.dtype(dtype)]))


def test_weights_round_trip_and_forward_matches(fann_lib, dtype):
    net, fnet = _pair(dtype)
    with fnet:
        W, b = fnet.get_params()
        for got, want in zip(W + b, net.weights + net.biases):
            np.testing.assert_array_equal(got, want)
        X, _ = data(7, 3, 2, dtype=dtype)
        np.testing.assert_allclose(fnet.run(X), net.forward(X), **TOL[np.dtype(dtype)])


def test_weights_reach_a_deeper_net(fann_lib, dtype):
    net, fnet = _pair(dtype, sizes=(5, 6, 4, 3))
    with fnet:
        X, _ = data(4, 5, 3, dtype=dtype)
        np.testing.assert_allclose(fnet.run(X), net.forward(X), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("fann_algo, schedule", [(_fann.FANN_TRAIN_INCREMENTAL, "online"),
                                                 (_fann.FANN_TRAIN_BATCH, "fullbatch")])
def test_one_epoch_updates_like_fastbp(fann_lib, dtype, fann_algo, schedule):
    lr = 0.5
    net, fnet = _pair(dtype, sizes=(3, 4, 2), learning_rate=lr, algorithm=fann_algo)
    X, Y = data(20, 3, 2, dtype=dtype)
    # FANN clips a to [0.01, 0.99] in the sigmoid derivative; keep clear of that.
    assert 0.05 < net.forward(X).min() and net.forward(X).max() < 0.95
    with fnet:
        mse = fnet.train_epoch(X, Y)
        history = fastbp.Trainer(net, schedule=schedule, learning_rate=lr,
                                 shuffle=False).fit(X, Y, epochs=1)
        # FANN_TRAIN_BATCH steps by a C float epsilon = learning_rate / n, even in
        # libdoublefann: float precision on the step.
        tol = dict(rtol=1e-6, atol=1e-8) if schedule == "fullbatch" else None
        _assert_params(fnet, net, dtype, schedule, tol)
        # FANN's MSE is the mean of (t - a)^2 over samples and outputs, before each update;
        # fastbp's loss the mean of 0.5 * sum (t - a)^2 over samples.
        n_out = Y.shape[1]
        np.testing.assert_allclose(mse * n_out / 2, history.loss[0], rtol=1e-5)


def test_shuffled_epochs_visit_samples_in_fastbps_order(fann_lib, dtype):
    net, fnet = _pair(dtype, sizes=(3, 4, 2), learning_rate=0.5, shuffle_seed=0)
    X, Y = data(30, 3, 2, dtype=dtype)
    with fnet:
        for _ in range(2):
            fnet.train_epoch(X, Y)
        fastbp.Trainer(net, schedule="online", learning_rate=0.5, shuffle=True,
                       seed=0).fit(X, Y, epochs=2)
        _assert_params(fnet, net, dtype, "two shuffled online epochs")


def test_contender_runs_online_and_full_and_rejects_minibatch(fann_lib, dtype):
    net0 = fastbp.Network([8, 5, 3], activations=["sigmoid", "softmax"],
                          loss="cross_entropy", dtype=dtype, seed=0)
    X, y = data(40, 8, 3, dtype=dtype, labels=True)
    for schedule in ("online", "full"):
        epoch, extra = _fann.fann_contender(net0, schedule, len(X))()
        assert extra is None
        epoch(X, y)
        epoch(X[:16], y[:16])  # the bench times prefixes of the data
        W, _ = epoch.fann.get_params()
        assert not np.allclose(W[0], net0.weights[0]), schedule
        epoch.close()
        epoch.close()
    with pytest.raises(RuntimeError, match="mini-batch"):
        _fann.fann_contender(net0, "64", len(X))


def test_missing_library_raises_import_error_naming_the_package(monkeypatch):
    monkeypatch.setattr(_fann, "_loaded", {})
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)

    def no_such_library(name, *args, **kwargs):
        raise OSError(f"{name}: cannot open shared object file")
    monkeypatch.setattr(ctypes, "CDLL", no_such_library)
    net0 = fastbp.Network([4, 3, 2], activations=["sigmoid", "softmax"],
                          loss="cross_entropy", seed=0)
    with pytest.raises(ImportError, match="apt-get install libfann2"):
        _fann.fann_contender(net0, "online", 10)
