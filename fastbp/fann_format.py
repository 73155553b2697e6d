"""FANN's network files (``.net``): the networks libfann's ``fann_save`` writes, read into
fastbp, and fastbp networks written for libfann's ``fann_create_from_file``.

:meth:`fastbp.Network.from_fann` and :meth:`fastbp.Network.to_fann` call this module; the
writer, :func:`~fastbp.fann_writer.write`, lives in :mod:`fastbp.fann_writer`.

The format (FANN 2.2's ``fann_io.c``): a version line (``FANN_FLO_2.1``, ``FANN_FLO_2.0``,
or ``FANN_FIX_2.0`` for ``fann_save_to_fixed``, whose values are integers scaled by
``2 ** decimal_point``), one ``name=value`` line per training setting in a fixed order,
``layer_sizes=`` (every layer's neurons, its bias neuron included), FANN_FLO_2.1's
``scale_included=`` (and the scaling parameters), then one line of every neuron's
``(num_inputs, activation_function, activation_steepness)`` and one line of every
connection's ``(connected_to_neuron, weight)``, neuron by neuron.

How FANN's networks map onto fastbp's (FANN 2.2's ``fann_run``):

- A layered network (``network_type=0``) ends every layer with a bias neuron of value 1
  (no inputs; the output layer's is unused): layer m's neuron j reads the D[m-1]
  neurons of layer m-1 and then its bias neuron, so its weights are fastbp's row
  ``[W[m][j] | b[m][j]]``. fann_run reads a fully connected layer's connections by
  position, so a file whose connections name other neurons is refused, as are shortcut
  (cascade) networks and sparse ones (``connection_rate < 1``, missing connections),
  whose layers fastbp cannot represent.
- A neuron computes ``a = f(s * x)``, x its weighted sum and s its steepness, with
  ``FANN_SIGMOID`` f(t) = 1 / (1 + exp(-2 t)), ``FANN_SIGMOID_SYMMETRIC`` tanh(t),
  ``FANN_LINEAR`` t and (FANN's development version) ``FANN_LINEAR_PIECE_RECT``
  max(0, t). They become fastbp's sigmoid, tanh, identity and relu, with the neuron's
  weights multiplied by 2 s (sigmoid) or s. That is exact where the factor is a power of
  two (FANN's default steepness 0.5 makes the sigmoid's 1); otherwise the product is
  taken in float64 -- exact for the values libfloatfann writes -- and rounded once to
  the network's dtype (a libdoublefann file read as float32 can round twice). Each
  neuron may have its own steepness; a layer must have one activation function. Every
  other activation (stepwise, threshold, Gaussian, Elliot, sine, ...) is refused.
- fann_run clips the scaled sum ``s * x`` to ``[-150 / s, 150 / s]``; fastbp does not.
  For sigmoid and tanh units with s up to about 8 the clip changes nothing that float64
  can tell; a linear unit's output differs once ``|s * x|`` passes ``150 / s`` (150 for
  the networks written here).
- ``FANN_FIX_2.0`` files hold each value times ``2 ** decimal_point``, rounded: they are
  read as those integers divided by it. libfixedfann runs them with stepwise
  approximations of the sigmoids; fastbp computes the functions themselves.
- FANN_FLO_2.1's input scaling (``fann_set_input_scaling_params``: FANN users call
  ``fann_scale_input`` before ``fann_run``) becomes the network's ``input_scaling``, and a
  network's ``input_scaling`` is written as FANN's, so that ``forward(x)`` is
  ``fann_run(fann_scale_input(x))``; FANN's output scaling (``fann_descale_output``) has
  no fastbp equal and is left out, with a warning.

Files are untrusted: the reader never evaluates anything, checks every count it reads
against the file's size before it allocates anything of that count, reads the long lines
a piece at a time, and raises ValueError naming the file and the line for anything
malformed or refused.
"""
import os
import re
import warnings

import numpy as np

from fastbp._npz import not_a_file
from fastbp.fann_writer import (
    CONNECTIONS_KEY, FANN_ACTIVATIONS, FANN_LINEAR, FANN_LINEAR_PIECE_RECT, FANN_SIGMOID,
    FANN_SIGMOID_SYMMETRIC, NEURONS_KEY, SCALES)
from fastbp.preprocessing import InputScaling

# FANN activation code -> (fastbp activation, weight factor per unit of steepness).
_READ = {FANN_LINEAR: ("identity", 1.0), FANN_SIGMOID: ("sigmoid", 2.0),
         FANN_SIGMOID_SYMMETRIC: ("tanh", 1.0), FANN_LINEAR_PIECE_RECT: ("relu", 1.0)}

# The name=value lines after the version line, in the order libfann reads them, with the
# kind of each value: "u" an unsigned count, "f" a float, "T" a fann_type (a float in
# FANN_FLO files, an integer in FANN_FIX files), "u*" / "T*" a list of the count before.
_HEADER = (
    ("num_layers", "u"), ("learning_rate", "f"), ("connection_rate", "f"),
    ("network_type", "u"), ("learning_momentum", "f"), ("training_algorithm", "u"),
    ("train_error_function", "u"), ("train_stop_function", "u"),
    ("cascade_output_change_fraction", "f"), ("quickprop_decay", "f"),
    ("quickprop_mu", "f"), ("rprop_increase_factor", "f"), ("rprop_decrease_factor", "f"),
    ("rprop_delta_min", "f"), ("rprop_delta_max", "f"), ("rprop_delta_zero", "f"),
    ("cascade_output_stagnation_epochs", "u"), ("cascade_candidate_change_fraction", "f"),
    ("cascade_candidate_stagnation_epochs", "u"), ("cascade_max_out_epochs", "u"),
    ("cascade_min_out_epochs", "u"), ("cascade_max_cand_epochs", "u"),
    ("cascade_min_cand_epochs", "u"), ("cascade_num_candidate_groups", "u"),
    ("bit_fail_limit", "T"), ("cascade_candidate_limit", "T"),
    ("cascade_weight_multiplier", "T"), ("cascade_activation_functions_count", "u"),
    ("cascade_activation_functions", "u*"), ("cascade_activation_steepnesses_count", "u"),
    ("cascade_activation_steepnesses", "T*"), ("layer_sizes", "u*"))

_NUMBER = rb"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"  # strtod's decimal syntax
_UNSIGNED = re.compile(rb"\+?\d+")
_INTEGER = re.compile(rb"[+-]?\d+")
_REAL = re.compile(_NUMBER)
_HEADER_LINE = 1 << 20  # longest header line read (FANN writes a few dozen bytes)
_PIECE = 1 << 20  # bytes of the neurons and connections lines parsed at a time
_MAX_ENTRY = 4096  # longest "(...)" entry: longer is not FANN's


def read(path, build):
    """The network in FANN file ``path``: ``build(layer_sizes, activations)`` makes it
    (once the file's structure has been read and checked; a network whose parameters
    are then written in place), and this fills its weights and biases. Returns it.

    Raises ValueError naming the path and line for a malformed file, or for a network
    fastbp cannot represent (see the module's docstring); OSError where it cannot be
    opened.
    """
    with _open_regular(path) as f:
        reader = _Reader(path, f, os.fstat(f.fileno()).st_size)
        return reader.network(build)




def _open_regular(path):
    """path opened for binary reading, refused (ValueError naming it) unless it is a
    regular file: opened without blocking, so that a FIFO is refused, not waited on, and
    checked open, so that a device such as /dev/zero is never read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        what = not_a_file(os.fstat(fd).st_mode)
        if what is not None:
            raise ValueError(f"{path} is not a FANN network file: it is {what}, not a "
                             "regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class _Reader:
    """One .net file read line by line (short lines whole, the neurons and connections
    lines a piece at a time); ``fail`` raises the ValueError naming the file and line."""

    def __init__(self, path, f, size):
        self.path, self.f, self.size = path, f, size
        self.lineno = 0
        self.new_line = True  # the next byte starts a line
        self.pending = None  # the start of a line read ahead: (bytes, whole line?)
        self.fixed = False
        self.scale = 1.0  # a FANN_FIX file's values are integers times this

    def fail(self, message, lineno=None):
        raise ValueError(f"{self.path}, line {lineno or self.lineno}: {message}")

    def _start(self, n, what):
        """(text, whole): the first bytes (about n at most) of the next line that is not
        blank, without its leading whitespace, and whether they end the line (the rest
        of a longer line stays in the file). ValueError where the file ends first."""
        if self.pending is not None:
            found, self.pending = self.pending, None
            return found
        text = b""
        while True:
            raw = self.f.readline(n)
            if not raw:
                raise ValueError(f"{self.path}: the file ends after line {self.lineno}, "
                                 f"before its {what}: not a complete FANN network file")
            if self.new_line:
                self.lineno += 1
            self.new_line = raw.endswith(b"\n")
            text = (text + raw).lstrip()
            if text:
                return text, self.new_line

    def line(self, what):
        """The next line that is not blank, stripped; ValueError where it is longer than
        FANN's header lines are (_HEADER_LINE bytes)."""
        text, whole = self._start(_HEADER_LINE + 1, what)
        if not whole and self.f.readline(1):
            self.fail(f"the line is longer than {_HEADER_LINE} bytes; FANN writes its "
                      f"{what} on a short line")
        return text.strip()

    def setting(self, name, kind, count=None):
        """The value of line ``name=...`` (which must come next), checked against its
        kind (see _HEADER): an int, a float, or a list of ``count`` of them."""
        line = self.line(f"'{name}=' line")
        key, eq, value = line.partition(b"=")
        if not eq or key.strip() != name.encode():
            self.fail(f"expected the line '{name}=...' (FANN's settings come in a fixed "
                      f"order); got {_show(line)}")
        pattern, convert, described = {
            "u": (_UNSIGNED, int, "an unsigned integer"),
            "f": (_REAL, float, "a decimal number"),
            "T": ((_INTEGER, int, "an integer (a FANN_FIX value)") if self.fixed
                  else (_REAL, float, "a decimal number"))}[kind[0]]
        tokens = value.split()
        want = count if kind.endswith("*") else 1
        if len(tokens) != want:
            self.fail(f"{name} holds {len(tokens)} values; expected {want}")
        values = []
        for t in tokens:
            if not pattern.fullmatch(t) or convert is int and len(t) > 19:
                self.fail(f"{name}: {_show(t)} is not {described} "
                          f"{'of at most 19 digits' if convert is int else ''}".rstrip())
            v = convert(t)
            if convert is float and not np.isfinite(v):
                self.fail(f"{name}: {_show(t)} is beyond the range of a float64")
            values.append(v)
        return values if kind.endswith("*") else values[0]

    def network(self, build):
        version = self.line("version line")
        if version not in (b"FANN_FLO_2.1", b"FANN_FLO_2.0", b"FANN_FIX_2.0"):
            old = version in (b"FANN_FLO_1.1", b"FANN_FIX_1.1")
            self.fail("not a FANN network file of a version fastbp reads (FANN_FLO_2.1, "
                      "FANN_FLO_2.0, FANN_FIX_2.0): "
                      + ("a FANN 1.x file; load it with libfann 2.x and save it again"
                         if old else f"it starts {_show(version)}"))
        if version.startswith(b"FANN_FIX"):
            self.fixed = True
            point = self.setting("decimal_point", "u")
            if point > 31:
                self.fail(f"decimal_point={point}; FANN's fixed point keeps it below 32")
            self.scale = 2.0 ** -point
        settings, lines = {}, {}
        for name, kind in _HEADER:
            count = None
            if kind.endswith("*"):
                count = settings["num_layers" if name == "layer_sizes" else name + "_count"]
            settings[name] = self.setting(name, kind, count)
            lines[name] = self.lineno
        sizes = self._structure(settings, lines)
        scaling = self._scaling(sizes) if version == b"FANN_FLO_2.1" else None
        layers = self._neurons(sizes)
        try:
            net = build([d - 1 for d in sizes], [act for act, _ in layers])
            if scaling is not None:
                net.input_scaling = InputScaling(*scaling)
        except ValueError as exc:
            self.fail(f"not a network fastbp can hold: {exc}", lines["layer_sizes"])
        self._connections(sizes, layers, net)
        while True:  # libfann stops reading here; text after the connections is not FANN's
            rest = self.f.read(_PIECE)
            if not rest:
                return net
            if rest.strip():
                self.fail("text after the connections line, which ends a FANN network file")

    def _structure(self, settings, lines):
        """The layer sizes (bias neurons included), once the network is known to be one
        fastbp can represent and small enough for the file's size."""
        if settings["network_type"] != 0:
            self.fail(f"a shortcut (cascade) network (network_type={settings['network_type']}"
                      "): its neurons read every earlier layer, where fastbp's layers read "
                      "the one before only", lines["network_type"])
        if settings["connection_rate"] < 1:
            self.fail(f"a sparse network (connection_rate={settings['connection_rate']:g}): "
                      "fastbp's layers are fully connected", lines["connection_rate"])
        sizes = settings["layer_sizes"]
        if len(sizes) < 2:
            self.fail(f"num_layers={len(sizes)}; a network has an input and an output layer",
                      lines["num_layers"])
        if min(sizes) < 2:
            self.fail(f"layer_sizes holds {min(sizes)}: every layer of a layered FANN network "
                      "has at least one neuron and its bias neuron", lines["layer_sizes"])
        # Bounded before anything of these sizes is allocated: the shortest neuron entry
        # "(0,0,0)" takes 7 bytes and the shortest connection "(0,0)" 5.
        neurons = sum(sizes)
        connections = sum((b - 1) * a for a, b in zip(sizes[:-1], sizes[1:]))
        if 7 * neurons + 5 * connections > self.size:
            self.fail(f"layer_sizes declare {neurons} neurons and {connections} "
                      f"connections, more than a file of {self.size} bytes holds",
                      lines["layer_sizes"])
        return sizes

    def _scaling(self, sizes):
        """FANN_FLO_2.1's scale_included line and, where it is 1, the scaling parameters:
        the input scaling as fastbp's (offset, scale), or None. FANN's
        ``((x - mean) / deviation + 1) * factor + new_min`` is ``(x - offset) / scale``
        with scale = deviation / factor and offset = mean - (factor + new_min) * scale,
        in float64 (exact for the factor 1 and new_min -1 that to_fann writes). Output
        scaling other than none has no place in a fastbp network: a warning says so."""
        key = b"scale_included="
        text, whole = self._start(len(key) + 2, "scale_included line")
        if not text.startswith(key):  # libfann, too, reads on without it
            self.pending = text, whole
            return None
        value = (text + (b"" if whole else self.f.readline(_HEADER_LINE))).strip()[len(key):]
        if value not in (b"0", b"1"):
            self.fail(f"scale_included={_show(value)}; expected 0 or 1")
        self.new_line = True
        if value == b"0":
            return None
        got = {}
        for name in SCALES:
            got[name] = np.array(self.setting(
                name, "f*", sizes[0] - 1 if name.endswith("_in") else sizes[-1] - 1))
            if name.startswith(("scale_deviation", "scale_factor")) and not (got[name] > 0).all():
                self.fail(f"{name} holds {got[name][~(got[name] > 0)][0]:g}; FANN divides by "
                          "it, so it must be positive")
        if not ((got["scale_mean_out"] == 0).all() and (got["scale_deviation_out"] == 1).all()
                and (got["scale_new_min_out"] == -1).all()
                and (got["scale_factor_out"] == 1).all()):
            warnings.warn(f"{self.path} scales the network's outputs (fann_descale_output); "
                          "a fastbp network has no output scaling, so the network read gives "
                          "the outputs before it", UserWarning, stacklevel=5)
        scale = got["scale_deviation_in"] / got["scale_factor_in"]
        offset = got["scale_mean_in"] - (got["scale_factor_in"] + got["scale_new_min_in"]) * scale
        return offset, scale

    def _entries(self, key, what, fields, count):
        """The line ``key`` + ``count`` entries "(a, b[, c])" as a (count, fields) float64
        array, parsed a piece at a time; ValueError naming the line and the entry."""
        head, whole = self._start(len(key) + _PIECE, f"{what}s line")
        while len(head) < len(key) and not whole:
            more = self.f.readline(len(key) - len(head))
            head, whole = head + more, not more or more.endswith(b"\n")
        if not head.startswith(key):
            self.fail(f"expected the {what}s line, '{key.decode()}...'; got {_show(head)}")
        lineno = self.lineno
        first = (rb"\s*\+?\d+\s*," * (fields - 1))
        valid = re.compile(rb"(?:\s*\(" + first + rb"\s*" + _NUMBER + rb"\s*\))*+\s*")
        out = np.empty((count, fields))
        done, pending, piece = 0, b"", head[len(key):]
        while True:
            data = pending + piece
            cut = data.rfind(b")") + 1
            done += self._parse(data[:cut], valid, out, done, what, fields, lineno)
            pending = data[cut:]
            if len(pending) > _MAX_ENTRY:
                self.fail(f"{what} {done + 1} is not an entry FANN writes", lineno)
            if whole or piece.endswith(b"\n"):
                break
            piece = self.f.readline(_PIECE)
            if not piece:
                break
        self.new_line = True
        done += self._parse(pending, valid, out, done, what, fields, lineno)
        if done != count:
            self.fail(f"the line holds {done} {what}s; layer_sizes declare {count}", lineno)
        return out

    def _parse(self, chunk, valid, out, done, what, fields, lineno):
        """The whole entries of chunk into out[done:]; returns their number."""
        n = chunk.count(b"(")
        if done + n > len(out):
            self.fail(f"more than the {len(out)} {what}s layer_sizes declare", lineno)
        end = valid.match(chunk).end()
        if end != len(chunk):
            k = done + chunk[:end].count(b"(") + 1
            form = ", ".join(["integer"] * (fields - 1) + ["number"])
            self.fail(f"{what} {k} is not '({form})': {_show(chunk[end:end + 40].strip())}",
                      lineno)
        if n:
            values = np.fromstring(chunk.translate(_PUNCTUATION), np.float64, sep=" ")
            values = values.reshape(n, fields)
            finite = np.isfinite(values).all(axis=1)
            if not finite.all():
                self.fail(f"{what} {done + int(np.argmin(finite)) + 1} holds a number beyond "
                          "the range of a float64", lineno)
            out[done:done + n] = values
        return n

    def _neurons(self, sizes):
        """Per layer after the input one: (fastbp activation, (D[m],) weight factors), the
        layer's neurons checked to be fully connected and of one supported function."""
        entries = self._entries(NEURONS_KEY, "neuron", 3, sum(sizes))
        inputs, codes, steep = entries[:, 0], entries[:, 1], entries[:, 2] * self.scale
        bad = np.flatnonzero(inputs[:sizes[0]])
        if bad.size:
            self.fail(f"input neuron {bad[0] + 1} has {inputs[bad[0]]:.0f} inputs; input "
                      "neurons have none")
        layers, first = [], sizes[0]
        for m in range(1, len(sizes)):
            units = slice(first, first + sizes[m] - 1)
            where = f"layer {m} (neurons {first + 1} to {first + sizes[m]})"
            wrong = np.flatnonzero(inputs[units] != sizes[m - 1])
            if wrong.size:
                j = first + wrong[0]
                self.fail(f"neuron {j + 1}, in {where}, has {inputs[j]:.0f} inputs; in a "
                          f"fully connected layered network it reads the {sizes[m - 1]} "
                          "neurons of the layer before (a sparse network, which fastbp does "
                          "not represent, or a corrupt file)")
            if inputs[first + sizes[m] - 1] != 0:
                self.fail(f"the last neuron of {where} has inputs; a layered FANN network "
                          "ends every layer with a bias neuron, which has none")
            used = [int(c) for c in np.unique(codes[units])]
            if len(used) > 1:
                self.fail(f"{where} mixes activation functions "
                          f"({', '.join(_name(c) for c in used)}); fastbp has one activation "
                          "per layer")
            if used[0] not in _READ:
                self.fail(f"{where} uses {_name(used[0])}, which fastbp has no equal of; it "
                          "reads FANN_SIGMOID, FANN_SIGMOID_SYMMETRIC, FANN_LINEAR and "
                          "FANN_LINEAR_PIECE_RECT")
            s = steep[units]
            if not (s > 0).all():
                self.fail(f"{where} has a steepness of {s[~(s > 0)][0]:g}; fann_run clips a "
                          "unit's sum to +-150/steepness, which needs a positive steepness")
            act, factor = _READ[used[0]]
            layers.append((act, factor * s))
            first += sizes[m]
        return layers

    def _connections(self, sizes, layers, net):
        """The connections line into net's weights and biases, each neuron's weights times
        its factor (in float64, rounded once to the network's dtype)."""
        count = sum((b - 1) * a for a, b in zip(sizes[:-1], sizes[1:]))
        entries = self._entries(CONNECTIONS_KEY, "connection", 2, count)
        lineno = self.lineno
        off, first = 0, 0  # first: number of layer m-1's first neuron
        for W, b, (_, factor), n_in in zip(net.weights, net.biases, layers, sizes):
            block = entries[off:off + W.shape[0] * n_in]
            wrong = np.flatnonzero(block[:, 0] != np.tile(np.arange(first, first + n_in),
                                                          W.shape[0]))
            if wrong.size:
                k = int(wrong[0])
                self.fail(f"connection {off + k + 1} comes from neuron {block[k, 0]:.0f}; in "
                          "a fully connected layered network it comes from neuron "
                          f"{first + k % n_in} (fann_run reads a layer's connections by "
                          "position)", lineno)
            weights = block[:, 1].reshape(W.shape[0], n_in) * self.scale * factor[:, None]
            W[...] = weights[:, :-1]
            b[...] = weights[:, -1]
            off += block.shape[0]
            first += n_in


_PUNCTUATION = bytes.maketrans(b"(),", b"   ")


def _show(text):
    """Bytes from the file as a short printable str, for messages."""
    return repr(text[:40].decode("ascii", "replace"))


def _name(code):
    return (f"{FANN_ACTIVATIONS[code]} ({code})" if 0 <= code < len(FANN_ACTIVATIONS)
            else f"activation function {code}")
