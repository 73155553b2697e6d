"""ONNX export: fastbp networks (:meth:`fastbp.Network.to_onnx`) and the scikit-learn
estimators (``MLPClassifier.to_onnx``, ``MLPRegressor.to_onnx``, and skl2onnx's
``to_onnx`` / ``convert_sklearn`` on pipelines that hold them).

A network becomes, per layer, one ``Gemm`` (``a @ W.T + b``, fastbp's (out, in) weights
as they are stored, ``transB=1``) and its activation: ``Sigmoid``, ``Tanh``, ``Relu``, none
for ``identity``, ``Softmax`` (axis 1) for a softmax output; opset 13 or later, float32 or
float64 (onnxruntime runs both). The estimators' models are built by skl2onnx around the
same layers, with the outputs skl2onnx gives scikit-learn's MLPs: the classifier's
``label`` (the argmax of the probabilities looked up in ``classes_``; 0/1 per label for
multilabel targets) and ``probabilities`` (``[1 - p, p]`` for one sigmoid unit; a ZipMap
unless ``options={"zipmap": False}``), the regressor's ``variable`` (n, n_outputs).

:func:`register_skl2onnx` tells skl2onnx about fastbp's estimators (a shape calculator
and a converter for each). It runs when ``fastbp.estimators`` is imported after
skl2onnx, on any estimator's ``to_onnx``, or when called; importing skl2onnx takes
seconds, so fastbp never imports it for this alone.

Needs ``onnx`` (and ``skl2onnx`` for the estimators): ``pip install "fastbp[onnx]"``.
"""
import importlib
import os

import numpy as np

MIN_OPSET = 13  # Softmax over one axis, Gemm with a broadcast C, Sigmoid/Tanh/Relu in double
_INSTALL = 'pip install "fastbp[onnx]"'
_ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "identity": None,
                "softmax": "Softmax"}
_DTYPES = ("float32", "float64")


def _tensor_type(dtype):
    """ONNX's TensorProto element type of a NumPy float dtype."""
    from onnx import helper
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _require(name, what):
    """Import ``name`` or raise ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"{what} needs the {name} package; install fastbp's onnx extra "
                          f"with `{_INSTALL}`") from exc


def _dtype(dtype, default):
    name = np.dtype(default if dtype is None else dtype).name
    if name not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    return np.dtype(name)


def _layers(graph, net, x, dtype):
    """Nodes computing ``net.forward`` from the (n, D[0]) tensor named x; returns the name
    of the (n, D[L]) output. ``graph`` adds initializers and nodes (see _Graph). A
    network's ``input_scaling`` comes first, ``(x - offset) / scale`` in double and then
    cast, as fastbp computes it."""
    from onnx import TensorProto
    a = x
    scaling = net.input_scaling
    if scaling is not None:
        a = graph.node("Cast", [a], "x64", to=TensorProto.DOUBLE)
        a = graph.node("Sub", [a, graph.initializer("offset", scaling.offset)], "centred")
        a = graph.node("Div", [a, graph.initializer("scale", scaling.scale)], "scaled")
        a = graph.node("Cast", [a], "xs", to=_tensor_type(dtype))
    for W, b, act in zip(net.weights, net.biases, net.activations):
        w = graph.initializer("W", np.asarray(W, dtype))
        c = graph.initializer("b", np.asarray(b, dtype))
        a = graph.node("Gemm", [a, w, c], "z", transB=1)
        if _ACTIVATIONS[act] is not None:
            extra = dict(axis=1) if act == "softmax" else {}
            a = graph.node(_ACTIVATIONS[act], [a], "a", **extra)
    return a


class _Graph:
    """Nodes and initializers collected for ``onnx.helper.make_graph``, named uniquely."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self.used = [], [], set()

    def name(self, base):
        n = len(self.used)
        while f"{base}{n}" in self.used:
            n += 1
        self.used.add(f"{base}{n}")
        return f"{base}{n}"

    def initializer(self, base, array):
        name = self.name(base)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def node(self, op_type, inputs, base, output=None, domain=None, **attrs):
        output = output or self.name(base)
        self.nodes.append(self.helper.make_node(op_type, inputs, [output],
                                                name=self.name(op_type), domain=domain,
                                                **attrs))
        return output


class _Skl2onnxGraph:
    """The same interface over skl2onnx's scope (unique names) and container."""

    def __init__(self, scope, container):
        self.scope, self.container = scope, container

    def initializer(self, base, array):
        from onnx import TensorProto, helper
        name = self.scope.get_unique_variable_name(base)
        proto = (TensorProto.STRING if array.dtype == object
                 else helper.np_dtype_to_tensor_dtype(array.dtype))
        self.container.add_initializer(name, proto, array.shape, array.ravel().tolist())
        return name

    def node(self, op_type, inputs, base, output=None, domain=None, **attrs):
        output = output or self.scope.get_unique_variable_name(base)
        self.container.add_node(op_type, inputs, output, op_domain=domain or "",
                                name=self.scope.get_unique_operator_name(op_type), **attrs)
        return output


def network_to_onnx(net, path=None, dtype=None, opset=None):
    """:meth:`fastbp.Network.to_onnx`: the network as an ONNX model with input ``X``
    (n, D[0]) and output ``Y`` = ``forward(X)`` (n, D[L]), written to ``path`` (where
    given) and returned. ``dtype``: "float32" or "float64" (default the network's; its
    parameters are cast to it); ``opset``: at least 13 (default 13, the widest support)."""
    onnx = _require("onnx", "Network.to_onnx")
    from onnx import helper, numpy_helper
    dtype = _dtype(dtype, net.dtype)
    opset = MIN_OPSET if opset is None else int(opset)
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be at least {MIN_OPSET}; got {opset}")
    graph = _Graph(helper, numpy_helper)
    graph.used.update(("X", "Y"))
    out = _layers(graph, net, "X", dtype)
    graph.node("Identity", [out], "Y", output="Y")
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    sizes = net.layer_sizes
    model_graph = helper.make_graph(
        graph.nodes, "fastbp_network",
        [helper.make_tensor_value_info("X", elem, ["N", sizes[0]])],
        [helper.make_tensor_value_info("Y", elem, ["N", sizes[-1]])],
        initializer=graph.initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(model_graph, opset_imports=opsets, producer_name="fastbp",
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save_model(model, os.fspath(path))
    return model


# -- the estimators, through skl2onnx -----------------------------------------------------

def _multilabel(est):
    """Whether a fitted classifier predicts several labels (one sigmoid unit each)."""
    return est.out_activation_ == "logistic" and est.n_outputs_ > 1


def _classifier_head(graph, est, p, dtype, label, proba, classes):
    """The classifier's outputs from the network's output p: ``proba`` as predict_proba
    gives it and ``label`` as predict does (classes: the labels to look up)."""
    from onnx import TensorProto
    if _multilabel(est):
        graph.node("Identity", [p], "proba", output=proba)
        half = graph.initializer("half", np.array(0.5, dtype))
        above = graph.node("Greater", [p, half], "above")  # as LabelBinarizer: p > 0.5
        graph.node("Cast", [above], "label", output=label, to=TensorProto.INT64)
        return
    if len(est.classes_) == 1:  # the only class, certain (as fastbp's predict_proba)
        zero = graph.initializer("zero", np.array(0, dtype))
        one = graph.initializer("one", np.array(1, dtype))
        graph.node("Add", [graph.node("Mul", [p, zero], "none"), one], "proba", output=proba)
    elif est.n_outputs_ == 1:  # one sigmoid unit: [1 - p, p]
        q = graph.node("Sub", [graph.initializer("one", np.array(1, dtype)), p], "q")
        graph.node("Concat", [q, p], "proba", output=proba, axis=1)
    else:
        graph.node("Identity", [p], "proba", output=proba)
    classes = np.asarray(classes)
    if classes.dtype.kind in "biuf":
        if classes.dtype.kind == "f" and not (classes == np.round(classes)).all():
            raise ValueError(f"classes_ {classes} are not whole numbers: skl2onnx's labels "
                             "are int64 or strings")
        classes = classes.astype(np.int64)
    else:
        classes = np.array([str(c).encode("utf-8") for c in classes], dtype=object)
    index = graph.node("ArgMax", [proba], "index", axis=1)  # first maximum, as np.argmax
    found = graph.node("ArrayFeatureExtractor", [graph.initializer("classes", classes),
                                                 index], "found", domain="ai.onnx.ml")
    shape = graph.initializer("shape", np.array([-1], np.int64))
    graph.node("Reshape", [found, shape], "label", output=label)


def _classifier_shapes(operator):
    """skl2onnx's shape calculator for scikit-learn's MLPClassifier, with the label's
    shape (n, n_labels) for multilabel targets."""
    from skl2onnx.common.data_types import Int64TensorType
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    calculate_linear_classifier_output_shapes(operator)
    est = operator.raw_operator
    if _multilabel(est):
        n = operator.inputs[0].get_first_dimension()
        operator.outputs[0].set_type(Int64TensorType([n, est.n_outputs_]))


def _regressor_shapes(operator):
    """skl2onnx's shape calculator for scikit-learn's MLPRegressor, with the output's
    shape (n, n_outputs_) (skl2onnx's says (n, 1) whatever the outputs)."""
    from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes
    calculate_linear_regressor_output_shapes(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = type(operator.outputs[0].type)(
        [n, operator.raw_operator.n_outputs_])


def _convert(scope, operator, container):
    """skl2onnx converter of fastbp's MLPClassifier and MLPRegressor."""
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType
    est = operator.raw_operator
    double = isinstance(operator.inputs[0].type, DoubleTensorType)
    dtype = np.dtype(np.float64 if double else np.float32)
    graph = _Skl2onnxGraph(scope, container)
    x = graph.node("Cast", [operator.inputs[0].full_name], "x",
                   to=TensorProto.DOUBLE if double else TensorProto.FLOAT)
    p = _layers(graph, est.network_, x, dtype)
    if len(operator.outputs) == 1:  # the regressor: (n, n_outputs)
        graph.node("Identity", [p], "variable", output=operator.outputs[0].full_name)
        return
    from skl2onnx.common.utils_classifier import get_label_classes
    _classifier_head(graph, est, p, dtype, operator.outputs[0].full_name,
                     operator.outputs[1].full_name, get_label_classes(scope, est))


def register_skl2onnx():
    """Register fastbp's MLPClassifier and MLPRegressor with skl2onnx (idempotent): each
    with skl2onnx's shape calculator for scikit-learn's MLP of its kind and fastbp's
    converter, the classifier with skl2onnx's options ``zipmap`` and ``nocl``. Then
    ``skl2onnx.to_onnx`` converts them, alone or inside pipelines."""
    skl2onnx = _require("skl2onnx", "converting fastbp's estimators to ONNX")
    from fastbp.estimators import MLPClassifier, MLPRegressor
    skl2onnx.update_registered_converter(
        MLPClassifier, "FastbpMLPClassifier", _classifier_shapes, _convert,
        options={"zipmap": [True, False, "columns"], "nocl": [False, True]}, overwrite=True)
    skl2onnx.update_registered_converter(
        MLPRegressor, "FastbpMLPRegressor", _regressor_shapes, _convert, overwrite=True)


def estimator_to_onnx(est, path, dtype="float32", options=None, target_opset=None):
    """``MLPClassifier.to_onnx`` / ``MLPRegressor.to_onnx``: skl2onnx's conversion of the
    fitted estimator, input ``X`` (n, n_features_in_) of ``dtype``, written to ``path``
    and returned."""
    register_skl2onnx()
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    dtype = _dtype(dtype, "float32")
    if target_opset is not None and int(target_opset) < MIN_OPSET:
        raise ValueError(f"target_opset must be at least {MIN_OPSET}; got {target_opset}")
    tensor = DoubleTensorType if dtype == np.float64 else FloatTensorType
    model = convert_sklearn(est, initial_types=[("X", tensor([None, est.n_features_in_]))],
                            options=None if options is None else {id(est): options},
                            target_opset=target_opset)
    if path is not None:
        onnx.save_model(model, os.fspath(path))
    return model
