"""FANN's network files (fastbp/fann_format.py): Network.from_fann reads what libfann's
fann_save writes and gives fann_run's outputs; Network.to_fann writes what libfann's
fann_create_from_file loads and runs with fastbp's outputs; both held to libfann itself
through ctypes (skipped, with the reason, where the FANN C library is not installed).
Malformed and unsupported files are refused with ValueError naming the file and line,
without allocating what their counts declare; those tests need no libfann."""
import ctypes
import os
import re
import tracemalloc
import warnings

import numpy as np
import pytest

import fastbp
from fastbp import fann_format
from fastbp.bench import fann as _fann
from fastbp.preprocessing import InputScaling

from ._util import data

# fann_run against forward: libfloatfann computes the sigmoids in double and rounds,
# fastbp in float; each sum adds in its own order.
TOL = {np.dtype("float32"): dict(rtol=2e-5, atol=2e-6),
       np.dtype("float64"): dict(rtol=1e-12, atol=1e-13)}
LINEAR, SIGMOID, SIGMOID_STEPWISE, SIGMOID_SYMMETRIC = 0, 3, 4, 5


@pytest.fixture
def fann_lib(dtype):
    """FANN's library for dtype with the file, layer and neuron functions declared."""
    try:
        lib = _fann.load(dtype)
    except ImportError as exc:
        pytest.skip(str(exc))
    dll, T, vp, u, i = lib.dll, lib.T, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int
    for name, restype, argtypes in [
            ("fann_save", i, [vp, ctypes.c_char_p]),
            ("fann_save_to_fixed", i, [vp, ctypes.c_char_p]),
            ("fann_create_from_file", vp, [ctypes.c_char_p]),
            ("fann_create_shortcut_array", vp, [u, ctypes.POINTER(u)]),
            ("fann_create_sparse_array", vp, [ctypes.c_float, u, ctypes.POINTER(u)]),
            ("fann_randomize_weights", None, [vp, T, T]),
            ("fann_set_activation_function_layer", None, [vp, i, i]),
            ("fann_set_activation_steepness_layer", None, [vp, T, i]),
            ("fann_set_activation_function", None, [vp, i, i, i]),
            ("fann_set_activation_steepness", None, [vp, T, i, i])]:
        fn = getattr(dll, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


class _Ann:
    """A libfann network (fann_create_*), freed on exit."""

    def __init__(self, lib, sizes, how="standard"):
        self.lib, self.sizes = lib, list(sizes)
        arr = (ctypes.c_uint * len(sizes))(*sizes)
        if how == "sparse":
            self.ann = lib.dll.fann_create_sparse_array(0.5, len(sizes), arr)
        else:
            self.ann = getattr(lib.dll, f"fann_create_{how}_array")(len(sizes), arr)
        assert self.ann

    @classmethod
    def load(cls, lib, path, sizes):
        self = cls.__new__(cls)
        self.lib, self.sizes = lib, list(sizes)
        self.ann = lib.dll.fann_create_from_file(os.fsencode(path))
        assert self.ann, f"libfann could not load {path}"
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.lib.destroy(self.ann)

    def save(self, path, fixed=False):
        save = self.lib.dll.fann_save_to_fixed if fixed else self.lib.dll.fann_save
        assert save(self.ann, os.fsencode(path)) >= 0

    def run(self, X):
        X = np.ascontiguousarray(X, self.lib.dtype)
        out = np.empty((len(X), self.sizes[-1]), self.lib.dtype)
        PT = ctypes.POINTER(self.lib.T)
        for k, row in enumerate(X):
            res = self.lib.run(self.ann, row.ctypes.data_as(PT))
            out[k] = np.ctypeslib.as_array(res, (self.sizes[-1],))
        return out


def _inputs(dtype, n_in=3, n=9):
    return data(n, n_in, 1, seed=4, dtype=dtype)[0]


# -- libfann -> fastbp ----------------------------------------------------------------------

@pytest.mark.parametrize("layers", [
    # (FANN activation, steepness) of each layer after the input one
    [(SIGMOID, 0.5), (SIGMOID, 0.5)],  # FANN's default steepness: the logistic function
    [(SIGMOID_SYMMETRIC, 0.75), (LINEAR, 0.25)],  # steepness folded into the weights
    [(LINEAR, 1.5), (SIGMOID_SYMMETRIC, 1.0), (SIGMOID, 0.3)],
])
def test_a_libfann_network_gives_fann_runs_outputs(fann_lib, dtype, tmp_path, layers):
    sizes = [3, 5, 4, 2][:len(layers) + 1]
    path = tmp_path / "fann.net"
    with _Ann(fann_lib, sizes) as ann:
        fann_lib.dll.fann_randomize_weights(ann.ann, -1.0, 1.0)
        for m, (fn, s) in enumerate(layers, start=1):
            fann_lib.dll.fann_set_activation_function_layer(ann.ann, fn, m)
            fann_lib.dll.fann_set_activation_steepness_layer(ann.ann, s, m)
        fann_lib.dll.fann_set_activation_steepness(ann.ann, 0.375, 1, 0)  # its own steepness
        ann.save(path)
        X = _inputs(dtype)
        net = fastbp.Network.from_fann(path, dtype=dtype)
        np.testing.assert_allclose(net.forward(X), ann.run(X), **TOL[np.dtype(dtype)])
    names = {LINEAR: "identity", SIGMOID: "sigmoid", SIGMOID_SYMMETRIC: "tanh"}
    assert net.activations == [names[fn] for fn, _ in layers]
    assert net.layer_sizes == sizes and net.dtype == dtype and net.loss_name == "mse"


def test_steepness_that_is_a_power_of_two_maps_exactly(fann_lib, dtype, tmp_path):
    """FANN_SIGMOID at 0.5 and FANN_SIGMOID_SYMMETRIC at 2 scale the weights by 1 and 2:
    the weights come out exactly as libfann holds them (times 2)."""
    path = tmp_path / "fann.net"
    with _Ann(fann_lib, [3, 4, 2]) as ann:
        fann_lib.dll.fann_randomize_weights(ann.ann, -1.0, 1.0)
        fann_lib.dll.fann_set_activation_function_layer(ann.ann, SIGMOID_SYMMETRIC, 1)
        fann_lib.dll.fann_set_activation_steepness_layer(ann.ann, 2.0, 1)
        fann_lib.dll.fann_set_activation_function_layer(ann.ann, SIGMOID, 2)
        fann_lib.dll.fann_set_activation_steepness_layer(ann.ann, 0.5, 2)
        ann.save(path)
        conns = (fann_lib.Connection * fann_lib.get_total_connections(ann.ann))()
        fann_lib.get_connection_array(ann.ann, conns)
        held = np.ctypeslib.as_array(conns)["weight"].astype(dtype)
    net = fastbp.Network.from_fann(path, dtype=dtype)
    flat = np.concatenate([np.hstack([W, b[:, None]]).ravel()
                           for W, b in zip(net.weights, net.biases)])
    np.testing.assert_array_equal(flat[:16], 2 * held[:16])  # layer 1: 4 x (3 + 1)
    np.testing.assert_array_equal(flat[16:], held[16:])


def test_a_fixed_point_file_reads_as_its_integers_scaled(fann_lib, dtype, tmp_path):
    """fann_save_to_fixed rounds each value to a multiple of 2**-decimal_point: the network
    read from it is the float network within that rounding (libfixedfann itself would run
    stepwise sigmoids; fastbp computes the functions)."""
    path = tmp_path / "fixed.net"
    with _Ann(fann_lib, [3, 5, 2]) as ann:
        fann_lib.dll.fann_randomize_weights(ann.ann, -1.0, 1.0)
        fann_lib.dll.fann_set_activation_function_layer(ann.ann, SIGMOID_SYMMETRIC, 1)
        fann_lib.dll.fann_set_activation_function_layer(ann.ann, SIGMOID, 2)
        ann.save(path, fixed=True)
        X = _inputs(dtype)
        want = ann.run(X)
    text = path.read_text()
    assert text.startswith("FANN_FIX_2.0\ndecimal_point=")
    point = int(re.search(r"decimal_point=(\d+)", text).group(1))
    net = fastbp.Network.from_fann(path, dtype=dtype)
    np.testing.assert_allclose(net.forward(X), want, atol=2 ** -point * 20)
    W = net.weights[1] * 2 ** point  # sigmoid at 0.5: the integers over 2**decimal_point
    np.testing.assert_array_equal(W, np.round(W))


@pytest.mark.parametrize("how, match", [
    ("shortcut", r"line 5: a shortcut \(cascade\) network"),
    ("sparse", r"line 4: a sparse network \(connection_rate=0.5\)"),
    ("stepwise", r"line 35: layer 1 .* uses FANN_SIGMOID_STEPWISE \(4\), which fastbp "),
    ("mixed", r"line 35: layer 1 .* mixes activation functions \(FANN_LINEAR \(0\), "
              r"FANN_SIGMOID_SYMMETRIC \(5\)\)"),
])
def test_networks_fastbp_cannot_represent_are_refused(fann_lib, dtype, tmp_path, how, match):
    path = tmp_path / "fann.net"
    with _Ann(fann_lib, [2, 3, 1], how="standard" if how in ("stepwise", "mixed") else how) as ann:
        if how == "mixed":
            fann_lib.dll.fann_set_activation_function_layer(ann.ann, SIGMOID_SYMMETRIC, 1)
            fann_lib.dll.fann_set_activation_function(ann.ann, LINEAR, 1, 1)
        ann.save(path)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}, {match}"):
        fastbp.Network.from_fann(path, dtype=dtype)


# -- fastbp -> libfann ----------------------------------------------------------------------

def _network(dtype, activations, sizes=(4, 6, 5, 3), seed=2):
    net = fastbp.Network(list(sizes), activations=activations, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    for b in net.biases:
        b[...] = rng.uniform(-0.5, 0.5, b.shape)
    return net


@pytest.mark.parametrize("activations", [["tanh", "sigmoid", "identity"],
                                         ["sigmoid", "identity", "tanh"]])
def test_to_fann_loads_in_libfann_and_runs_with_fastbps_outputs(fann_lib, dtype, tmp_path,
                                                                activations):
    net = _network(dtype, activations)
    path = tmp_path / "fastbp.net"
    net.to_fann(path)
    X = _inputs(dtype, n_in=4)
    with _Ann.load(fann_lib, path, net.layer_sizes) as ann:
        np.testing.assert_allclose(ann.run(X), net.forward(X), **TOL[np.dtype(dtype)])
        ann.save(tmp_path / "again.net")  # libfann writes back what it read
    again = fastbp.Network.from_fann(tmp_path / "again.net", dtype=dtype)
    np.testing.assert_array_equal(again.params, net.params)


@pytest.mark.parametrize("activations", [["tanh", "sigmoid", "identity"],
                                         ["identity", "tanh", "sigmoid"]])
def test_round_trip_is_exact(dtype, tmp_path, activations):
    net = _network(dtype, activations)
    net.to_fann(tmp_path / "net.net")
    back = fastbp.Network.from_fann(tmp_path / "net.net", dtype=dtype,
                                    loss=net.loss_name)
    np.testing.assert_array_equal(back.params, net.params)
    assert repr(back) == repr(net)


def test_to_fann_refuses_what_fann_cannot_run(tmp_path):
    path = tmp_path / "net.net"
    relu = fastbp.Network([3, 4, 2], activations=["relu", "sigmoid"], seed=0)
    with pytest.raises(ValueError, match=r"layer 1 is 'relu'.*FANN 2\.2.*no rectifier"):
        relu.to_fann(path)
    softmax = fastbp.Network([3, 4, 2], activations=["tanh", "softmax"],
                             loss="cross_entropy", seed=0)
    with pytest.raises(ValueError, match=r"layer 2 is 'softmax'.*FANN has no softmax"):
        softmax.to_fann(path)
    assert not path.exists()


def test_a_network_without_biases_writes_zero_bias_weights(tmp_path):
    net = fastbp.Network([3, 4, 2], activations="tanh", seed=0, bias=False, dtype="float64")
    net.to_fann(tmp_path / "net.net")
    back = fastbp.Network.from_fann(tmp_path / "net.net", dtype="float64")
    np.testing.assert_array_equal(back.params, net.params)
    assert not any(b.any() for b in back.biases)


# -- malformed files: no libfann needed -----------------------------------------------------

@pytest.fixture
def written(tmp_path):
    """(path, text) of a small network's file as to_fann writes it."""
    path = tmp_path / "good.net"
    _network("float64", ["tanh", "sigmoid"], sizes=(3, 4, 2)).to_fann(path)
    return path, path.read_text()


def _refused(path, text, match):
    path.write_text(text)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}(, line \\d+)?: {match}"):
        fastbp.Network.from_fann(path)


def test_every_truncation_is_refused_naming_the_file(written):
    path, text = written
    bad = path.with_name("cut.net")
    lines = text.splitlines(keepends=True)
    for cut in range(0, len(text) - len(lines[-1]) // 2, 23):
        bad.write_text(text[:cut])
        with pytest.raises(ValueError, match=f"^{re.escape(str(bad))}"):
            fastbp.Network.from_fann(bad)


@pytest.mark.parametrize("old, new, match", [
    ("layer_sizes=4 5 3 ", "layer_sizes=4 6 3 ", r"the line holds 12 neurons; layer_sizes "
                                                  r"declare 13"),
    ("layer_sizes=4 5 3 ", "layer_sizes=4 5 ", r"layer_sizes holds 2 values; expected 3"),
    ("num_layers=3", "num_layers=3000000000", r"layer_sizes holds 3 values; expected "
                                              r"3000000000"),
    ("FANN_FLO_2.1", "FANN_FLO_1.1", r"not a FANN network file .*: a FANN 1\.x file"),
    ("FANN_FLO_2.1", "<html>", r"not a FANN network file of a version fastbp reads"),
    ("learning_rate=0.700000", "learning_rate=0x1p3", r"learning_rate: '0x1p3' is not a "
                                                      r"decimal number"),
    ("network_type=0\n", "", r"expected the line 'network_type=\.\.\.'"),
    ("(4, 5, 1.0", "(4, 7, 1.0", r"layer 1 \(neurons 5 to 9\) mixes activation functions"),
    ("(4, 5, 1.0", "(3, 5, 1.0", r"neuron 5, in layer 1 \(neurons 5 to 9\), has 3 inputs"),
    ("(4, 5, 1.0", "(4, 5, -1.0", r"layer 1 .* has a steepness of -1"),
    ("(1, ", "(2, ", r"connection 2 comes from neuron 2; in a fully connected layered "
                     r"network it comes from neuron 1"),
    ("(1, ", "(1; ", r"connection 2 is not '\(integer, number\)': '\(1;"),
    ("(1, ", "(1, 1e999) (1, ", r"more than the 26 connections layer_sizes declare"),
    ("scale_included=0", "scale_included=7", r"scale_included='7'; expected 0 or 1"),
])
def test_malformed_files_are_refused_naming_the_line(written, old, new, match):
    path, text = written
    assert old in text
    _refused(path, text.replace(old, new, 1), match)


def test_huge_declared_layers_are_refused_before_anything_is_allocated(written):
    path, text = written
    path.write_text(text.replace("layer_sizes=4 5 3 ", "layer_sizes=4 2000000000 3 "))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"line 33: layer_sizes declare 2000000007 "
                                             r"neurons and 11999999996 connections, more "
                                             r"than a file of \d+ bytes holds"):
            fastbp.Network.from_fann(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 ** 20


def test_text_after_the_connections_and_odd_files_are_refused(written, tmp_path):
    path, text = written
    _refused(path, text + "junk\n", r"text after the connections line")
    with pytest.raises(ValueError, match=r"is not a FANN network file: it is a folder"):
        fastbp.Network.from_fann(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"it is a FIFO"):
        fastbp.Network.from_fann(fifo)
    with pytest.raises(FileNotFoundError):
        fastbp.Network.from_fann(tmp_path / "missing.net")


def test_blank_lines_and_crlf_are_read_as_libfann_reads_them(written):
    path, text = written
    want = fastbp.Network.from_fann(path, dtype="float64").params
    path.write_bytes(("\n" + text.replace("\n", "\r\n\r\n")).encode())
    np.testing.assert_array_equal(fastbp.Network.from_fann(path, dtype="float64").params, want)


def test_linear_piece_rect_reads_as_relu(written):
    """FANN's development version adds FANN_LINEAR_PIECE_RECT (18), max(0, s x)."""
    path, text = written
    rect = path.with_name("rect.net")
    rect.write_text(text.replace("(4, 5, 1.0", "(4, 18, 2.0").replace("(0, 5, 1.0",
                                                                      "(0, 18, 2.0"))
    net = fastbp.Network.from_fann(rect, dtype="float64")
    ref = fastbp.Network.from_fann(path, dtype="float64")
    assert net.activations == ["relu", "sigmoid"]
    np.testing.assert_array_equal(net.weights[0], 2 * ref.weights[0])


def test_fanns_input_scaling_becomes_input_scaling_and_output_scaling_warns(written):
    """FANN's ((x - mean) / deviation + 1) * factor + new_min, at mean 1, deviation 2,
    factor 4 and new_min 0.5, is (x + 1.25) / 0.5."""
    path, text = written
    values = dict(scale_mean_in=1.0, scale_deviation_in=2.0, scale_new_min_in=0.5,
                  scale_factor_in=4.0, scale_mean_out=0.0, scale_deviation_out=1.0,
                  scale_new_min_out=-1.0, scale_factor_out=1.0)
    scale = "scale_included=1\n" + "".join(
        f"{name}=" + f"{values[name]} " * (3 if name.endswith("_in") else 2) + "\n"
        for name in fann_format.SCALES)
    path.write_text(text.replace("scale_included=0\n", scale))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = fastbp.Network.from_fann(path, dtype="float64")
    np.testing.assert_array_equal(net.input_scaling.offset, [-1.25] * 3)
    np.testing.assert_array_equal(net.input_scaling.scale, [0.5] * 3)
    path.write_text(text.replace("scale_included=0\n", scale.replace(
        "scale_mean_out=0.0", "scale_mean_out=3.0")))
    with pytest.warns(UserWarning, match="scales the network's outputs"):
        fastbp.Network.from_fann(path)
    path.write_text(text.replace("scale_included=0\n", scale.replace("1.0 \n", "\n", 1)))
    with pytest.raises(ValueError, match=r"line 35: scale_mean_in holds 2 values; expected 3"):
        fastbp.Network.from_fann(path)
    path.write_text(text.replace("scale_included=0\n", scale.replace("2.0 ", "0.0 ", 1)))
    with pytest.raises(ValueError, match=r"line 36: scale_deviation_in holds 0; FANN divides"):
        fastbp.Network.from_fann(path)


def test_input_scaling_travels_to_libfann_and_back(fann_lib, dtype, tmp_path):
    """to_fann writes input_scaling as FANN's own, which fann_scale_input applies before
    fann_run; from_fann reads it back exactly."""
    net = _network(dtype, ["tanh", "sigmoid"], sizes=(3, 4, 2))
    net.input_scaling = InputScaling([10.0, -2.0, 0.5], [4.0, 0.25, 3.0])
    net.to_fann(tmp_path / "scaled.net")
    back = fastbp.Network.from_fann(tmp_path / "scaled.net", dtype=dtype)
    assert back.input_scaling == net.input_scaling
    np.testing.assert_array_equal(back.params, net.params)
    X = _inputs(dtype) * 5 + 3
    fann_lib.dll.fann_scale_input.argtypes = [ctypes.c_void_p, ctypes.POINTER(fann_lib.T)]
    with _Ann.load(fann_lib, tmp_path / "scaled.net", net.layer_sizes) as ann:
        scaled = np.array(X, fann_lib.dtype)  # a copy: fann_scale_input works in place
        for row in scaled:
            fann_lib.dll.fann_scale_input(ann.ann, row.ctypes.data_as(ctypes.POINTER(fann_lib.T)))
        np.testing.assert_allclose(ann.run(scaled), net.forward(X), rtol=1e-5, atol=1e-6)


def test_a_fixed_point_file_without_libfann(tmp_path):
    """FANN_FIX_2.0: values are integers over 2**decimal_point, the steepness too."""
    path = tmp_path / "fixed.net"
    _network("float64", ["tanh", "sigmoid"], sizes=(2, 2, 1)).to_fann(path)
    text = path.read_text().replace("FANN_FLO_2.1\n", "FANN_FIX_2.0\ndecimal_point=4\n")
    text = text.replace("scale_included=0\n", "")
    text = re.sub(r"-?\d\.\d{20}e[+-]\d\d", "8", text)  # every value 8 / 16 = 0.5
    path.write_text(text)
    net = fastbp.Network.from_fann(path, dtype="float64")
    # tanh layer: steepness 0.5 -> weights 0.5 * 0.5; sigmoid layer: 2 * 0.5 * 0.5
    np.testing.assert_array_equal(net.params, [0.25] * 6 + [0.5] * 3)
