"""ONNX export (fastbp/onnx_export.py), run by onnxruntime: Network.to_onnx equals forward,
the estimators' to_onnx equals predict / predict_proba with the outputs skl2onnx gives
scikit-learn's own MLPs, and pipelines holding fastbp's estimators convert with skl2onnx.
Skipped where onnx or onnxruntime (the test extra) is missing."""
import subprocess
import sys
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastbp  # noqa: E402

from ._util import data  # noqa: E402

TOL = {np.dtype("float32"): dict(rtol=1e-5, atol=1e-5),
       np.dtype("float64"): dict(rtol=1e-12, atol=1e-12)}


def _run(model, X):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"X": X})


@pytest.mark.parametrize("activations", [["tanh", "relu", "softmax"],
                                         ["sigmoid", "identity", "sigmoid"],
                                         ["relu", "tanh", "identity"]])
def test_network_to_onnx_equals_forward(dtype, tmp_path, activations):
    loss = "cross_entropy" if activations[-1] in ("softmax", "sigmoid") else "mse"
    net = fastbp.Network([5, 7, 6, 3], activations=activations, loss=loss, dtype=dtype,
                         seed=1)
    for b in net.biases:
        b[...] = np.linspace(-0.5, 0.5, b.size)
    X, _ = data(11, 5, 3, dtype=dtype)
    model = net.to_onnx(tmp_path / "net.onnx")
    assert onnx.load(tmp_path / "net.onnx") == model
    assert model.opset_import[0].version >= 13
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Gemm") == 3 and ("Softmax" in ops) == (activations[-1] == "softmax")
    (Y,) = _run(model, X)
    assert Y.dtype == dtype and Y.shape == (11, 3)
    np.testing.assert_allclose(Y, net.forward(X), **TOL[np.dtype(dtype)])


def test_input_scaling_is_part_of_the_model(dtype):
    from fastbp.preprocessing import InputScaling
    net = fastbp.Network([3, 4, 2], activations=["tanh", "identity"], dtype=dtype, seed=0)
    net.input_scaling = InputScaling([100.0, -3.0, 0.5], [20.0, 0.1, 2.0])
    X = data(8, 3, 1, dtype=dtype)[0] * 10 + 50
    np.testing.assert_allclose(_run(net.to_onnx(), X)[0], net.forward(X),
                               **TOL[np.dtype(dtype)])


def test_network_to_onnx_in_another_dtype_and_opset():
    net = fastbp.Network([4, 3, 2], activations=["tanh", "sigmoid"], seed=0)
    X, _ = data(6, 4, 2, dtype="float64")
    model = net.to_onnx(dtype="float64", opset=17)
    assert model.opset_import[0].version == 17
    np.testing.assert_allclose(_run(model, X)[0], net.forward(X), rtol=1e-6)
    with pytest.raises(ValueError, match="opset must be at least 13; got 12"):
        net.to_onnx(opset=12)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        net.to_onnx(dtype="float16")


def test_missing_onnx_names_the_extra(monkeypatch):
    net = fastbp.Network([2, 2], seed=0)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'needs the onnx package.*pip install "fastbp\[onnx\]"'):
        net.to_onnx()


# -- the estimators -------------------------------------------------------------------------

skl2onnx = pytest.importorskip("skl2onnx")
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastbp.estimators import MLPClassifier, MLPRegressor  # noqa: E402

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X32 = X_IRIS.astype(np.float32)


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


@pytest.mark.parametrize("y", [
    Y_IRIS,                                   # multiclass: softmax
    Y_IRIS == 1,                              # binary, bool labels: one sigmoid unit
    np.array(["setosa", "versicolor", "virginica"])[Y_IRIS],
    np.where(Y_IRIS == 2, "b", "a"),          # binary, string labels
    np.c_[Y_IRIS == 0, Y_IRIS == 1, Y_IRIS > 0].astype(int),  # multilabel
    np.full(150, 7),                          # one class
], ids=["multiclass", "binary", "strings", "binary-strings", "multilabel", "one-class"])
def test_classifier_to_onnx_equals_predict_and_predict_proba(tmp_path, y):
    clf = _fit(MLPClassifier(hidden_layer_sizes=(6,), max_iter=40, random_state=0), X32, y)
    model = clf.to_onnx(tmp_path / "clf.onnx", options={"zipmap": False})
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]
    label, proba = _run(onnx.load(tmp_path / "clf.onnx"), X32)
    np.testing.assert_array_equal(label, clf.predict(X32))
    np.testing.assert_allclose(proba, clf.predict_proba(X32), rtol=1e-5, atol=1e-5)


def test_classifier_outputs_are_those_skl2onnx_gives_scikit_learn():
    """Default options: a ZipMap of probabilities per sample, named as skl2onnx names
    scikit-learn's MLPClassifier's outputs, with the same types."""
    ours = _fit(MLPClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=0),
                X32, Y_IRIS).to_onnx(None)
    theirs = skl2onnx.to_onnx(_fit(SkMLPClassifier(hidden_layer_sizes=(5,), max_iter=20),
                                   X32, Y_IRIS), X32[:1])
    assert [(o.name, o.type) for o in ours.graph.output] == \
        [(o.name, o.type) for o in theirs.graph.output]
    label, proba = _run(ours, X32[:4])
    assert isinstance(proba, list) and sorted(proba[0]) == [0, 1, 2]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_out", [1, 3])
def test_regressor_to_onnx_equals_predict(dtype, n_out):
    y = X_IRIS[:, :n_out].ravel() if n_out == 1 else X_IRIS[:, :n_out]
    reg = _fit(MLPRegressor(hidden_layer_sizes=(6,), max_iter=40, random_state=0,
                            dtype=dtype), X_IRIS.astype(dtype), y)
    model = reg.to_onnx(None, dtype=dtype)
    assert [o.name for o in model.graph.output] == ["variable"]
    (Y,) = _run(model, X_IRIS.astype(dtype))
    assert Y.shape == (150, n_out)
    np.testing.assert_allclose(Y.reshape(reg.predict(X_IRIS).shape),
                               reg.predict(X_IRIS.astype(dtype)), **TOL[np.dtype(dtype)])


def test_a_pipeline_converts_with_skl2onnx():
    pipe = _fit(Pipeline([("scale", StandardScaler()),
                          ("mlp", MLPClassifier(hidden_layer_sizes=(6,), max_iter=40,
                                                random_state=0))]), X_IRIS, Y_IRIS)
    pipe[-1].to_onnx(None)  # registers fastbp's converters (as importing after skl2onnx does)
    model = skl2onnx.to_onnx(pipe, X32[:1], options={id(pipe[-1]): {"zipmap": False}})
    label, proba = _run(model, X32)
    np.testing.assert_array_equal(label, pipe.predict(X32))
    np.testing.assert_allclose(proba, pipe.predict_proba(X32), rtol=1e-5, atol=1e-5)


def test_fastbp_registers_when_imported_after_skl2onnx():
    """The README's way: import skl2onnx, use fastbp's estimator inside a pipeline, convert;
    no call of fastbp's own."""
    code = ("import numpy as np, skl2onnx, fastbp\n"
            "from sklearn.pipeline import Pipeline\n"
            "from sklearn.preprocessing import StandardScaler\n"
            "X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)\n"
            "pipe = Pipeline([('s', StandardScaler()), ('m', fastbp.MLPClassifier(\n"
            "    hidden_layer_sizes=(3,), max_iter=2))]).fit(X, np.arange(20) % 3)\n"
            "skl2onnx.to_onnx(pipe, X[:1])\n")
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True)


def test_missing_skl2onnx_names_the_extra(monkeypatch):
    clf = _fit(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2), X32, Y_IRIS)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(ImportError, match=r'needs the skl2onnx package.*fastbp\[onnx\]'):
        clf.to_onnx(None)
