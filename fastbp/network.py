"""Network: the parameters of a multilayer perceptron, its forward pass, loss and gradients."""
import os
import tempfile
import zipfile

import numpy as np

from fastbp import _validate, backends
from fastbp.kernels import codes

_FORMAT = "fastbp.Network"
_FORMAT_VERSION = 1

# Rows per kernel call in forward/loss/gradients: bounds workspace memory for big X.
_CHUNK = 4096


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
    seed : int, numpy.random.Generator or None
        Seeds the initialization: Glorot/Xavier uniform, or He normal for relu layers.
        Biases start at zero.
    bias : bool, default True
        ``False`` keeps every bias at zero; trainers never update them.

    Attributes
    ----------
    params : ndarray (P,)
        All parameters in one buffer: ``W[1], b[1], W[2], b[2], ...``, each ``W`` row-major.
    weights : list of ndarray
        ``weights[m-1]`` is ``W[m]``, shape ``(D[m], D[m-1])``, a writable view of ``params``.
    biases : list of ndarray
        ``biases[m-1]`` is ``b[m]``, shape ``(D[m],)``, a writable view of ``params``.

    Examples
    --------
    >>> net = Network([64, 32, 10], activations=["sigmoid", "softmax"],
    ...               loss="cross_entropy", seed=0)
    >>> net.weights[0].shape
    (32, 64)
    """

    def __init__(self, layer_sizes, activations="sigmoid", loss="mse", dtype="float32",
                 seed=None, bias=True):
        sizes = _check_sizes(layer_sizes)
        n_layers = len(sizes) - 1
        self.dtype = _validate.as_dtype(dtype)
        self.activations = _check_activations(activations, n_layers, sizes[-1])
        self.loss_name = _validate.choice("loss", loss, codes.LOSSES)
        if loss == "cross_entropy" and self.activations[-1] not in ("softmax", "sigmoid"):
            raise ValueError("loss='cross_entropy' needs a 'softmax' or 'sigmoid' output "
                             f"layer; got {self.activations[-1]!r}")
        self.bias = bool(bias)
        self.sizes = np.array(sizes, dtype=np.int64)
        self.act_codes = np.array([codes.ACTIVATIONS[a] for a in self.activations], np.int64)
        self.loss_code = codes.LOSSES[self.loss_name]
        self.params = np.zeros(int((self.sizes[1:] * (self.sizes[:-1] + 1)).sum()), self.dtype)
        self.initialize(seed)

    # -- parameters -------------------------------------------------------------------

    def initialize(self, seed=None):
        """Redraw the weights (Glorot uniform; He normal for relu layers); zero the biases."""
        rng = np.random.default_rng(seed)
        for W, b, act in zip(self.weights, self.biases, self.activations):
            n_out, n_in = W.shape
            if act == "relu":
                W[...] = rng.normal(0.0, np.sqrt(2.0 / n_in), W.shape)
            else:
                limit = np.sqrt(6.0 / (n_in + n_out))
                W[...] = rng.uniform(-limit, limit, W.shape)
            b[...] = 0

    def _views(self):
        off = 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            W = self.params[off:off + n_out * n_in].reshape(n_out, n_in)
            off += n_out * n_in
            yield W, self.params[off:off + n_out]
            off += n_out

    @property
    def weights(self):
        return [W for W, _ in self._views()]

    @property
    def biases(self):
        return [b for _, b in self._views()]

    @property
    def layer_sizes(self):
        return [int(d) for d in self.sizes]

    @property
    def n_params(self):
        """Number of weights and biases, P."""
        return self.params.size

    def unflatten(self, flat):
        """Split a (P,) array laid out like ``params`` into (weight list, bias list) views."""
        keep, self.params = self.params, flat
        try:
            return self.weights, self.biases
        finally:
            self.params = keep

    def __setstate__(self, state):
        vars(self).update(state)
        _validate.own_arrays(self)

    def __repr__(self):
        return (f"Network({self.layer_sizes}, activations={self.activations}, "
                f"loss={self.loss_name!r}, dtype={self.dtype.name!r}, bias={self.bias})")

    # -- evaluation -------------------------------------------------------------------

    def _inputs(self, X):
        return _validate.as_inputs(X, int(self.sizes[0]), self.dtype)

    def _targets(self, Y, n):
        softmax = self.activations[-1] == "softmax"
        return _validate.as_targets(Y, n, int(self.sizes[-1]), labels_ok=softmax,
                                    probabilities=self.loss_name == "cross_entropy",
                                    dtype=self.dtype)

    def _passes(self, kernels, X, Y=None, grad=None, cost=None, sw=None):
        """Run the kernels over X in chunks of at most _CHUNK rows.

        Yields (lo, hi, output block (hi - lo, D[L])) after each chunk's forward pass;
        with Y given also fills ``cost[lo:hi]`` and adds the chunk's summed
        gradient, each sample's weighted by ``sw`` (empty: 1), into ``grad``.
        """
        n = X.shape[0]
        cap = min(n, _CHUNK)
        A = np.empty(cap * int(self.sizes.sum()), self.dtype)
        Dl = np.empty_like(A) if grad is not None else None
        L = len(self.sizes) - 1
        for lo in range(0, n, cap):
            hi = min(lo + cap, n)
            m = hi - lo
            A[:m * X.shape[1]] = X[lo:hi].ravel()
            kernels.forward(A, self.params, m, self.sizes, self.act_codes)
            if cost is not None:
                kernels.sample_costs(cost[lo:hi], A, Y[lo:hi], m, self.sizes,
                                     self.act_codes, self.loss_code)
            if grad is not None:
                kernels.output_delta(Dl, A, Y[lo:hi], sw[lo:hi], m, self.sizes,
                                     self.act_codes, self.loss_code)
                kernels.hidden_deltas(Dl, A, self.params, m, self.sizes, self.act_codes)
                kernels.accumulate_gradients(grad, Dl, A, m, self.sizes)
            off = m * int(self.sizes[:L].sum())
            yield lo, hi, A[off:off + m * int(self.sizes[L])].reshape(m, -1)

    def forward(self, X, backend="loop"):
        """Outputs a[L] for inputs X.

        Parameters
        ----------
        X : array_like, (n, D[0]) or (D[0],)
        backend : {"loop", "vectorized", "cuda"}

        Returns
        -------
        ndarray (n, D[L]), or (D[L],) when X is one 1-D sample.
        """
        kernels = backends.get(backend)
        X, single = self._inputs(X)
        out = np.empty((X.shape[0], int(self.sizes[-1])), self.dtype)
        for lo, hi, a_out in self._passes(kernels, X):
            out[lo:hi] = a_out
        return out[0] if single else out

    def loss(self, X, Y, backend="loop", sample_weight=None):
        """Mean per-sample cost over the rows of X (no regularization term): with
        ``sample_weight`` the weighted mean, sum w_s C_s / sum w_s.

        Y is ``(n, D[L])``; for a softmax output also 1-D integer class labels.
        """
        kernels = backends.get(backend)
        X, _ = self._inputs(X)
        Y = self._targets(Y, X.shape[0])
        sw = _validate.as_sample_weight(sample_weight, X.shape[0], self.dtype)
        cost = np.empty(X.shape[0], np.float64)
        for _ in self._passes(kernels, X, Y, cost=cost):
            pass
        return float(np.average(cost, weights=sw if len(sw) else None))

    def gradients(self, X, Y, backend="loop", sample_weight=None):
        """Mean gradient of the per-sample cost over the rows of X; with ``sample_weight``
        the weighted mean, sum w_s g_s / sum w_s (the gradient of ``loss``).

        Returns
        -------
        (dW, db) : lists shaped like ``weights`` and ``biases``. With ``bias=False`` the
        bias gradients are zero, as the biases are not parameters of the model.
        """
        kernels = backends.get(backend)
        X, _ = self._inputs(X)
        Y = self._targets(Y, X.shape[0])
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

    # -- persistence ------------------------------------------------------------------

    def save(self, path):
        """Write the network to ``path`` as a portable ``.npz`` file, atomically.

        The file holds the layer sizes, activations, loss, dtype, bias flag and the
        parameters. It is written to a temporary file beside ``path`` and renamed over
        it, so a crash never leaves a half-written file.
        """
        _write_npz(path, self._state())

    def _state(self):
        return dict(format=np.array(_FORMAT), version=np.array(_FORMAT_VERSION),
                    sizes=self.sizes, activations=np.array(self.activations),
                    loss=np.array(self.loss_name), dtype=np.array(self.dtype.name),
                    bias=np.array(self.bias), params=self.params)

    @classmethod
    def load(cls, path):
        """Read a network written by :meth:`save`.

        Raises ValueError when the file is truncated, corrupt or not a fastbp network.
        """
        return cls._from_state(_read_npz(path), path)

    @classmethod
    def _from_state(cls, state, path):
        try:
            if str(state["format"]) != _FORMAT:
                raise ValueError(f"format {str(state['format'])!r}")
            if int(state["version"]) > _FORMAT_VERSION:
                raise ValueError(f"format version {int(state['version'])} is newer than "
                                 f"this fastbp reads ({_FORMAT_VERSION})")
            net = cls([int(d) for d in state["sizes"]],
                      activations=[str(a) for a in state["activations"]],
                      loss=str(state["loss"]), dtype=str(state["dtype"]),
                      bias=bool(state["bias"]))
            params = state["params"]
            if params.shape != net.params.shape or params.dtype != net.dtype:
                raise ValueError(f"params of shape {params.shape} and dtype {params.dtype} "
                                 f"do not fit the layer sizes")
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path} is not a valid fastbp network file: {exc}") from None
        net.params[...] = params
        return net


def _write_npz(path, arrays):
    """np.savez to a temporary file in the target's directory, fsync, then rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastbp-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _read_npz(path):
    """All arrays of an .npz file, read eagerly; ValueError if it is not a sound .npz."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise ValueError(f"{path} is not a readable fastbp network file "
                         f"(truncated or corrupt?): {exc}") from None


def _check_sizes(layer_sizes):
    try:
        sizes = list(layer_sizes)
    except TypeError:
        raise TypeError(f"layer_sizes must be a sequence of integers; got {layer_sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"layer_sizes needs at least an input and an output size; got {sizes}")
    for d in sizes:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"layer_sizes must be positive integers; got {sizes}")
    return [int(d) for d in sizes]


def _check_activations(activations, n_layers, n_out):
    names = [activations] * n_layers if isinstance(activations, str) else list(activations)
    if len(names) != n_layers:
        raise ValueError(f"activations has {len(names)} names; the network has {n_layers} "
                         "weight layers (give one name, or one per layer)")
    for name in names:
        _validate.choice("activation", name, codes.ACTIVATIONS)
    names = [codes.ACTIVATION_NAMES[codes.ACTIVATIONS[a]] for a in names]
    if "softmax" in names[:-1]:
        raise ValueError("activations: 'softmax' is allowed on the output layer only")
    if names[-1] == "softmax" and n_out < 2:
        raise ValueError("a 'softmax' output needs at least 2 outputs")
    return names
