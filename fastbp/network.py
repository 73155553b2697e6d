"""Network: the parameters of a multilayer perceptron, its forward pass, loss and gradients."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastbp import _layout, _network_file, _parallel, _validate, backends
from fastbp._npz import NpzReader, write_npz
from fastbp.kernels import codes

if TYPE_CHECKING:
    import onnx

    from fastbp.preprocessing import InputScaling

# Rows per kernel call in forward/loss/gradients: bounds workspace memory for big X.
_CHUNK = 4096
# forward takes its lean path (Network._forward_few) for at most this many rows.
FEW_ROWS = 16


class Network:
    """A fully connected feed-forward network.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[D0, D1, ..., DL]``: inputs, hidden layers, outputs. At least two entries.
    activations : str or sequence of str, default "sigmoid"
        One name for every layer, or one per weight layer: ``"sigmoid"``, ``"tanh"``,
        ``"relu"``, ``"identity"`` (alias ``"linear"``), ``"softmax"`` (output only).
    loss : {"mse", "cross_entropy"}, default "mse"
        ``mse`` is ``0.5 * sum (y - a)^2`` per sample. ``cross_entropy`` needs a
        ``softmax`` output (categorical) or a ``sigmoid`` output (binary, per output).
    dtype : {"float32", "float64"}, default "float32"
        ``None`` is refused: a network computes in one stated precision (the
        scikit-learn estimators resolve their ``dtype=None`` from the input first).
    seed : int (>= 0), numpy.random.Generator or None
        Seeds the initialization: Glorot/Xavier uniform, or He normal for relu layers.
        Biases start at zero.
    bias : bool, default True
        ``False`` keeps every bias at zero; trainers never update them.

    Attributes
    ----------
    params : ndarray (P,)
        All parameters in one buffer: ``W[1], b[1], W[2], b[2], ...``, each ``W`` row-major.
        The network owns this buffer: ``net.params = values`` copies values of shape (P,)
        into it (converted to ``dtype``) and refuses any other shape.
    sizes : ndarray (L + 1,) int64, read-only
        ``D[0] .. D[L]`` (a fresh read-only copy; ``layer_sizes`` gives a list).
    weights : list of ndarray
        ``weights[m-1]`` is ``W[m]``, shape ``(D[m], D[m-1])``, a writable view of ``params``.
    biases : list of ndarray
        ``biases[m-1]`` is ``b[m]``, shape ``(D[m],)``, a writable view of ``params``.
    input_scaling : fastbp.preprocessing.InputScaling or None
        Applied to every input the network takes (``fit_input_scaling`` sets it from
        training data); saved and loaded with the network. None: inputs as given.

    Examples
    --------
    >>> net = Network([64, 32, 10], activations=["sigmoid", "softmax"],
    ...               loss="cross_entropy", seed=0)
    >>> net.weights[0].shape
    (32, 64)
    """

    def __init__(self, layer_sizes: Sequence[int], activations: str | Sequence[str] = "sigmoid",
                 loss: str = "mse", dtype: DTypeLike = "float32",
                 seed: int | np.random.Generator | None = None, bias: bool = True) -> None:
        sizes = self._configure(layer_sizes, activations, loss, dtype, bias)
        rng = _validate.rng("seed", seed)
        self._params = np.zeros(_layout.n_params(sizes), self.dtype)
        self._input_scaling: InputScaling | None = None
        self.initialize(rng)

    def _configure(self, layer_sizes, activations, loss, dtype, bias):
        """Set the settings, each checked (for ``__init__`` and ``_unfilled`` alike), and
        the codes the kernels take for them; returns the layer sizes as a list."""
        sizes = _layout.check_sizes(layer_sizes)
        self.dtype = _validate.as_dtype(dtype)
        self.activations = _layout.check_activations(activations, len(sizes) - 1, sizes[-1])
        self.loss_name = _layout.check_loss(loss, self.activations)
        self.bias = bool(bias)
        # The kernels index params by these sizes: both stay private, so that neither can
        # change without the other (sizes is exposed read-only, params copies in).
        self._sizes = np.array(sizes, dtype=np.int64)
        self.act_codes = np.array([codes.ACTIVATIONS[a] for a in self.activations], np.int64)
        self.loss_code = codes.LOSSES[self.loss_name]
        return sizes

    # -- parameters -------------------------------------------------------------------

    def fresh(self, seed: int | np.random.Generator | None = None) -> Network:
        """A new network with this one's settings and weights drawn from ``seed`` exactly as
        ``Network(<the same settings>, seed=seed)`` draws them; no input scaling. Faster than
        the constructor (the settings were checked when this network was made)."""
        net = Network.__new__(Network)
        net.__dict__.update(self.__dict__, activations=list(self.activations),
                            _sizes=self._sizes.copy(), act_codes=self.act_codes.copy(),
                            _params=np.zeros_like(self._params), _input_scaling=None)
        net.initialize(seed)
        return net

    def initialize(self, seed: int | np.random.Generator | None = None) -> None:
        """Redraw the weights (Glorot uniform; He normal for relu layers); zero the biases."""
        rng = _validate.rng("seed", seed)
        _layout.initialize(self.weights, self.biases, self.activations, rng)

    @property
    def params(self) -> NDArray[np.floating]:
        return self._params

    @params.setter
    def params(self, values: ArrayLike) -> None:
        arr = _validate.numeric("params", values)
        if arr.shape != self._params.shape:
            raise ValueError(f"params must have shape {self._params.shape}, one value per "
                             f"weight and bias of this network; got {arr.shape}")
        self._params[...] = arr  # the network keeps its own buffer (kernels index it)

    @property
    def sizes(self) -> NDArray[np.int64]:
        sizes = self._sizes.copy()
        sizes.flags.writeable = False
        return sizes

    @property
    def weights(self) -> list[NDArray[np.floating]]:
        return [W for W, _ in _layout.views(self._params, self.layer_sizes)]

    @property
    def biases(self) -> list[NDArray[np.floating]]:
        return [b for _, b in _layout.views(self._params, self.layer_sizes)]

    @property
    def layer_sizes(self) -> list[int]:
        return [int(d) for d in self._sizes]

    @property
    def n_params(self) -> int:
        """Number of weights and biases, P."""
        return self._params.size

    def unflatten(self, flat: NDArray[np.floating]
                  ) -> tuple[list[NDArray[np.floating]], list[NDArray[np.floating]]]:
        """Split a (P,) array laid out like ``params`` into (weight list, bias list) views."""
        if np.shape(flat) != self._params.shape:
            raise ValueError(f"flat must have shape {self._params.shape}; got {np.shape(flat)}")
        views = list(_layout.views(flat, self.layer_sizes))
        return [W for W, _ in views], [b for _, b in views]

    def __setstate__(self, state):
        for old in ("params", "sizes"):  # pickled before the buffers became private
            if old in state:
                state["_" + old] = state.pop(old)
        vars(self).update(state)
        _validate.own_arrays(self)

    def __repr__(self) -> str:
        return (f"Network({self.layer_sizes}, activations={self.activations}, "
                f"loss={self.loss_name!r}, dtype={self.dtype.name!r}, bias={self.bias})")

    # -- evaluation -------------------------------------------------------------------

    @property
    def input_scaling(self) -> InputScaling | None:
        return vars(self).get("_input_scaling")  # (pickled before it existed: None)

    @input_scaling.setter
    def input_scaling(self, scaling: InputScaling | None) -> None:
        from fastbp.preprocessing import InputScaling
        if scaling is not None and not isinstance(scaling, InputScaling):
            raise TypeError(f"input_scaling must be a fastbp.preprocessing.InputScaling or "
                            f"None; got {type(scaling).__name__}")
        if scaling is not None and len(scaling) != int(self._sizes[0]):
            raise ValueError(f"input_scaling has {len(scaling)} inputs; this network has "
                             f"{int(self._sizes[0])}")
        self._input_scaling = scaling

    def fit_input_scaling(self, X: ArrayLike) -> Network:
        """Standardize this network's inputs from now on with the column means and
        standard deviations of X (training data: ``preprocessing.InputScaling.fit``);
        returns the network."""
        from fastbp.preprocessing import InputScaling
        X, _ = _validate.as_inputs(X, int(self._sizes[0]), np.float64)
        self.input_scaling = InputScaling.fit(X)
        return self

    def as_inputs(self, X: ArrayLike, name: str = "X") -> tuple[NDArray[np.floating], bool]:
        """(X, single): inputs as every method of the network takes them, checked -- an
        (n, D[0]) C-contiguous array of the network's dtype, through ``input_scaling``
        where set -- and whether X was one 1-D sample. Bad input raises ValueError or
        TypeError naming ``name``."""
        scaling = self.input_scaling
        if scaling is None:
            return _validate.as_inputs(X, int(self._sizes[0]), self.dtype, name=name)
        X, single = _validate.as_inputs(X, int(self._sizes[0]), np.float64, name=name)
        return scaling.apply(X, self.dtype), single

    def as_targets(self, Y: ArrayLike, n: int, name: str = "Y") -> NDArray[np.floating]:
        """Targets for n samples as the kernels take them, checked: (n, D[L]) of the
        network's dtype; 1-D class labels one-hot encoded for a softmax output."""
        softmax = self.activations[-1] == "softmax"
        return _validate.as_targets(Y, n, int(self._sizes[-1]), labels_ok=softmax,
                                    probabilities=self.loss_name == "cross_entropy",
                                    dtype=self.dtype, name=name)

    def _passes(self, kernels, X, Y=None, grad=None, cost=None, sw=None):
        """Run the kernels over X in chunks of at most _CHUNK rows.

        Yields (lo, hi, output block (hi - lo, D[L])) after each chunk's forward pass;
        with Y given also fills ``cost[lo:hi]`` and adds the chunk's summed
        gradient, each sample's weighted by ``sw`` (empty: 1), into ``grad``.
        """
        n = X.shape[0]
        sizes, params = self._sizes, self._params
        cap = min(n, _CHUNK)
        A = np.empty(cap * int(sizes.sum()), self.dtype)
        Dl = np.empty_like(A) if grad is not None else None
        L = len(sizes) - 1
        for lo in range(0, n, cap):
            hi = min(lo + cap, n)
            m = hi - lo
            A[:m * X.shape[1]] = X[lo:hi].ravel()
            with _parallel.parallel_guard():
                kernels.forward(A, params, m, sizes, self.act_codes)
                if cost is not None:
                    kernels.sample_costs(cost[lo:hi], A, Y[lo:hi], m, sizes,
                                         self.act_codes, self.loss_code)
                if grad is not None:
                    kernels.output_delta(Dl, A, Y[lo:hi], sw[lo:hi], m, sizes,
                                         self.act_codes, self.loss_code)
                    kernels.hidden_deltas(Dl, A, params, m, sizes, self.act_codes)
                    kernels.accumulate_gradients(grad, Dl, A, m, sizes)
            off = m * int(sizes[:L].sum())
            yield lo, hi, A[off:off + m * int(sizes[L])].reshape(m, -1)

    def forward(self, X: ArrayLike, backend: str = "loop") -> NDArray[np.floating]:
        """Outputs a[L] for inputs X.

        Parameters
        ----------
        X : array_like, (n, D[0]) or (D[0],)
        backend : {"loop", "vectorized", "cuda"}

        Returns
        -------
        ndarray (n, D[L]), or (D[L],) when X is one 1-D sample.
        """
        if backend == "loop":
            out = self._forward_few(X)
            if out is not None:
                return out
        kernels = backends.get(backend)
        X, single = self.as_inputs(X)
        out = self._outputs(kernels, X)
        return out[0] if single else out

    def _forward_few(self, X):
        """forward on the loop backend for up to FEW_ROWS rows given as the kernels take
        them (an ndarray of the network's dtype, C-contiguous, finite; no input scaling)
        in one compiled call -- the same numbers -- or None for the checked path: a
        control loop calling forward on one row would otherwise spend nearly all its time
        in Python."""
        if (type(X) is not np.ndarray or X.dtype != self.dtype or X.ndim not in (1, 2)
                or not X.flags.c_contiguous or self.input_scaling is not None):
            return None
        single = X.ndim == 1
        rows = X.reshape(1, -1) if single else X
        sizes = self._sizes
        if rows.shape[1] != sizes[0] or not 0 < rows.shape[0] <= FEW_ROWS:
            return None
        out = np.empty((rows.shape[0], sizes[-1]), self.dtype)
        from fastbp.kernels import loop_layers
        if not loop_layers.forward_few(rows, self._params, sizes, self.act_codes, out):
            return None
        return out[0] if single else out

    def _outputs(self, kernels, X):
        """a[L] (n, D[L]) for X already through as_inputs (scaled: never twice)."""
        out = np.empty((X.shape[0], int(self._sizes[-1])), self.dtype)
        for lo, hi, a_out in self._passes(kernels, X):
            out[lo:hi] = a_out
        return out

    def loss(self, X: ArrayLike, Y: ArrayLike, backend: str = "loop",
             sample_weight: ArrayLike | None = None) -> float:
        """Mean per-sample cost over the rows of X (no regularization term): with
        ``sample_weight`` the weighted mean, sum w_s C_s / sum w_s.

        Y is ``(n, D[L])``; for a softmax output also 1-D integer class labels.
        """
        kernels = backends.get(backend)
        X, _ = self.as_inputs(X)
        Y = self.as_targets(Y, X.shape[0])
        sw = _validate.as_sample_weight(sample_weight, X.shape[0], self.dtype)
        cost = np.empty(X.shape[0], np.float64)
        for _ in self._passes(kernels, X, Y, cost=cost):
            pass
        return float(np.average(cost, weights=sw if len(sw) else None))

    def gradients(self, X: ArrayLike, Y: ArrayLike, backend: str = "loop",
                  sample_weight: ArrayLike | None = None
                  ) -> tuple[list[NDArray[np.floating]], list[NDArray[np.floating]]]:
        """Mean gradient of the per-sample cost over the rows of X; with ``sample_weight``
        the weighted mean, sum w_s g_s / sum w_s (the gradient of ``loss``).

        Returns
        -------
        (dW, db) : lists shaped like ``weights`` and ``biases``. With ``bias=False`` the
        bias gradients are zero, as the biases are not parameters of the model.
        """
        kernels = backends.get(backend)
        X, _ = self.as_inputs(X)
        Y = self.as_targets(Y, X.shape[0])
        sw = _validate.as_sample_weight(sample_weight, X.shape[0], self.dtype)
        grad = np.zeros_like(self.params)
        for _ in self._passes(kernels, X, Y, grad=grad, sw=sw):
            pass
        grad /= sw.sum(dtype=np.float64) if len(sw) else X.shape[0]
        dW, db = self.unflatten(grad)
        if not self.bias:
            for g in db:
                g[...] = 0
        return dW, db

    # -- predictions ------------------------------------------------------------------

    @property
    def is_classifier(self) -> bool:
        """True for a softmax output, or one sigmoid unit trained with cross-entropy."""
        return self.activations[-1] == "softmax" or (
            self.activations[-1] == "sigmoid" and self.loss_name == "cross_entropy"
            and int(self._sizes[-1]) == 1)

    def predict_proba(self, X: ArrayLike, backend: str = "loop") -> NDArray[np.floating]:
        """Class probabilities of a classifier (see ``is_classifier``).

        Returns
        -------
        ndarray (n, K): the softmax outputs; for one sigmoid unit p, the two columns
        ``[1 - p, p]``. (D[L],)-shaped rows become one row for a 1-D X.

        Raises
        ------
        ValueError for a network that is not a classifier.
        """
        if not self.is_classifier:
            raise ValueError("predict_proba needs a classifier: a 'softmax' output, or one "
                             "'sigmoid' output with loss='cross_entropy'; this network has "
                             f"{int(self._sizes[-1])} {self.activations[-1]!r} output(s) and "
                             f"loss={self.loss_name!r}")
        out = self.forward(X, backend=backend)
        if self.activations[-1] == "sigmoid":
            out = np.stack([1 - out[..., 0], out[..., 0]], axis=-1)
        return out

    def predict(self, X: ArrayLike, backend: str = "loop") -> NDArray[Any]:
        """Predictions for X: class indices (int64) for a classifier -- the argmax of a
        softmax output, ``p >= 0.5`` for one sigmoid unit with cross-entropy -- and the
        outputs ``forward(X)`` otherwise (a regressor, or several independent sigmoid
        outputs)."""
        if not self.is_classifier:
            return self.forward(X, backend=backend)
        return self._classes(self.forward(X, backend=backend))

    def _classes(self, out):
        """Class indices from a classifier's outputs: p >= 0.5 for one sigmoid unit, else
        the argmax."""
        if self.activations[-1] == "sigmoid":
            return (out[..., 0] >= 0.5).astype(np.int64)
        return np.argmax(out, axis=-1).astype(np.int64)

    def score(self, X: ArrayLike, y: ArrayLike, backend: str = "loop") -> float:
        """Accuracy for a classifier, else the coefficient of determination R^2 of
        ``forward(X)`` against y, averaged uniformly over the outputs (as scikit-learn's
        ``r2_score``).

        For a softmax output y is class labels (n,) or one-hot rows (n, K) (the argmax is
        the class); for one sigmoid unit, y is (n,) or (n, 1) in [0, 1] (``y >= 0.5`` is
        class 1).
        """
        X, _ = self.as_inputs(X)
        n = X.shape[0]
        kernels = backends.get(backend)
        if self.is_classifier:
            Y = self.as_targets(y, n, name="y")
            truth = (Y[:, 0] >= 0.5) if Y.shape[1] == 1 else Y.argmax(axis=1)
            return float(np.mean(self._classes(self._outputs(kernels, X)) == truth))
        Y = self.as_targets(y, n, name="y").astype(np.float64)
        out = self._outputs(kernels, X).astype(np.float64)
        resid = ((Y - out) ** 2).sum(axis=0)
        total = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(total > 0, 1 - resid / np.where(total > 0, total, 1),
                          np.where(resid > 0, 0.0, 1.0))  # constant y: as scikit-learn
        return float(r2.mean())

    # -- persistence ------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network to ``path`` as a portable ``.npz`` file, atomically.

        The file holds the layer sizes, activations, loss, dtype, bias flag and the
        parameters. It is written to a temporary file beside ``path`` (beside the target of
        a symbolic link) and renamed over it, so a crash never leaves a half-written file.
        A new file gets the mode NumPy's would (0666 less the umask); an existing one keeps
        its mode.

        Only a regular file is ever replaced: where ``path`` (after following symbolic
        links) is a folder this raises IsADirectoryError, where it is a FIFO, a device (such
        as ``/dev/null``) or a socket, OSError; both name the path and what is there, and
        leave it as it is.
        """
        write_npz(path, self.arrays())

    def arrays(self) -> dict[str, NDArray[Any]]:
        """The named arrays ``save`` writes (a trainer's file adds its own to them)."""
        scaling = self.input_scaling
        return dict(format=np.array(_network_file.FORMAT),
                    version=np.array(_network_file.FORMAT_VERSION),
                    sizes=self._sizes, activations=np.array(self.activations),
                    loss=np.array(self.loss_name), dtype=np.array(self.dtype.name),
                    bias=np.array(self.bias), params=self._params,
                    **({} if scaling is None else scaling.arrays()))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Network:
        """Read a network written by :meth:`save`.

        Safe on untrusted files: only the entries a network needs are read, one at a time,
        each within bounds whatever the zip directory says of its size: its ``.npy`` header
        is checked (kind, shape, size) against what the network needs and what a file of
        this size can hold before anything of that size is allocated, and its data is read
        a chunk at a time from a stream that must end where the header says. Every setting is
        checked before the parameters are read, straight into the buffer the network keeps
        (no random network of the declared size is built first). Raises ValueError naming
        the file when it is truncated, corrupt or not a fastbp network.
        """
        with NpzReader(path) as reader:
            return cls.from_reader(reader)

    @classmethod
    def from_reader(cls, reader):
        """The network in an open NpzReader (``load``; ``Trainer.load`` reads its own entries
        after it), every entry checked before it is read."""
        what = "fastbp network file"
        with reader.checking(what):
            sizes, activations, loss, dtype, bias = _network_file.read_settings(reader)
            net = cls._unfilled(sizes, activations, loss, dtype, bias)
            net.input_scaling = _network_file.read_input_scaling(reader, sizes[0])
            # The one large entry, last: its shape and dtype are the network's own, checked
            # before it is allocated; the array read becomes the network's buffer.
            net._params = _network_file.read_params(reader, sizes, dtype)
        return net

    @classmethod
    def zeros(cls, layer_sizes: Sequence[int], activations: str | Sequence[str] = "sigmoid",
              loss: str = "mse", dtype: DTypeLike = "float32", bias: bool = True) -> Network:
        """A network as ``Network(...)`` makes it, every argument checked the same way,
        with every weight and bias 0 instead of a random draw: for parameters that are
        set afterwards (``net.params = ...``), and for checking settings cheaply (a
        zeroed buffer costs no time until it is written)."""
        net = cls._unfilled(layer_sizes, activations, loss, dtype, bias)
        net._params = np.zeros(_layout.n_params(net.layer_sizes), net.dtype)
        return net

    @classmethod
    def _unfilled(cls, layer_sizes, activations, loss, dtype, bias):
        """A network as ``cls(layer_sizes, activations, loss, dtype, bias=bias)`` makes it,
        every setting checked the same way, but with no parameters: the caller sets
        ``_params`` to a C-contiguous (P,) array of ``dtype``, which the network then owns.
        For :meth:`load`, which would otherwise allocate and randomly initialize P
        parameters only to overwrite them. Sets what ``__init__`` sets, but ``_params``
        (tests/test_files.py compares the attributes of both)."""
        net = cls.__new__(cls)
        net._configure(layer_sizes, activations, loss, dtype, bias)
        net._input_scaling = None
        return net

    # -- other formats: FANN's .net files, ONNX ---------------------------------------

    @classmethod
    def from_fann(cls, path: str | os.PathLike[str], dtype: DTypeLike = "float32",
                  loss: str = "mse") -> Network:
        """The network in a file libfann's ``fann_save`` wrote, as ``fann_run`` runs it:
        FANN_SIGMOID, FANN_SIGMOID_SYMMETRIC and FANN_LINEAR layers become sigmoid, tanh
        and identity, each neuron's steepness folded into its weights, FANN's bias
        neurons the biases, FANN's input scaling ``input_scaling``. ``loss``: the
        network's (FANN's files do not say). Anything else (shortcut or sparse networks,
        other activations, a malformed file) raises ValueError naming the file and line.
        See :mod:`fastbp.fann_format`."""
        from fastbp import fann_format
        return fann_format.read(path, lambda sizes, activations: cls.zeros(
            sizes, activations, loss=loss, dtype=dtype))

    def to_fann(self, path: str | os.PathLike[str]) -> None:
        """Write the network as a file that libfann's ``fann_create_from_file`` loads and
        ``fann_run`` runs with this network's outputs (``input_scaling`` as FANN's, for
        ``fann_scale_input``); relu and softmax layers, which FANN 2.2 cannot run, raise
        ValueError. See :mod:`fastbp.fann_format`."""
        from fastbp import fann_writer
        fann_writer.write(path, self)

    def to_onnx(self, path: str | os.PathLike[str] | None = None, dtype: DTypeLike | None = None,
                opset: int | None = None) -> onnx.ModelProto:
        """The network as an ONNX model (written to ``path`` where given) whose output
        ``Y`` is ``forward(X)``; needs ``pip install "fastbp[onnx]"``. See
        :func:`fastbp.onnx_export.network_to_onnx`."""
        from fastbp import onnx_export
        return onnx_export.network_to_onnx(self, path, dtype=dtype, opset=opset)
