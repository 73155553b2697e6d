"""The FANN C library (Fast Artificial Neural Network, 2.2) as a rival in ``fastbp bench``.

FANN is called through ctypes: ``libfloatfann`` for float32, ``libdoublefann`` for float64
(its ``fann_type`` is ``float`` in one, ``double`` in the other). Only the benchmarks import this
module, and only when the ``fann`` contender is asked for. Install the library with
``apt-get install libfann2`` (Debian/Ubuntu).

Mapping a fastbp network onto FANN (checked by tests/test_fann.py):

- ``fann_create_standard_array(sizes)``: fully connected layers. Every layer but the output
  ends with a bias neuron of value 1, so layer m's connections are ``[W[m] | b[m]]``, shape
  ``(D[m], D[m-1] + 1)``, stored row by row, layer after layer.
- ``FANN_SIGMOID`` is ``1 / (1 + exp(-2 * steepness * x))``: the logistic function at
  FANN's default steepness 0.5 (set explicitly here), whose derivative
  ``2 * steepness * a * (1 - a)`` is then ``a * (1 - a)``. FANN clips ``a`` to
  [0.01, 0.99] inside that derivative; fastbp does not, so the two differ on saturated units.
- ``FANN_ERRORFUNC_LINEAR``: output delta ``(t - a) * a * (1 - a)``, the gradient of
  ``0.5 * sum (t - a)^2``, fastbp's "mse". (FANN's default, ``FANN_ERRORFUNC_TANH``,
  stretches the error with ``log((1 + e) / (1 - e))`` and is not plain gradient descent.)
- ``FANN_TRAIN_INCREMENTAL``: one update ``w += lr * delta * a_prev`` per sample (momentum
  0), the whole epoch inside ``fann_train_epoch``: fastbp's "online" schedule.
  ``FANN_TRAIN_BATCH``: one update per epoch with the mean gradient: "fullbatch".
  FANN has no mini-batch schedule.
"""
import ctypes
import ctypes.util
import time
import weakref

import numpy as np

# fann_data.h enums
FANN_TRAIN_INCREMENTAL, FANN_TRAIN_BATCH, FANN_TRAIN_RPROP = 0, 1, 2
FANN_SIGMOID, FANN_SIGMOID_SYMMETRIC = 3, 5
# fastbp activation -> (FANN activation, steepness): FANN_SIGMOID is 1 / (1 + exp(-2 s x)),
# FANN_SIGMOID_SYMMETRIC is tanh(s x).
ACTIVATIONS = {"sigmoid": (FANN_SIGMOID, 0.5), "tanh": (FANN_SIGMOID_SYMMETRIC, 1.0)}
FANN_ERRORFUNC_LINEAR, FANN_ERRORFUNC_TANH = 0, 1

_LIBRARIES = {"float32": ("floatfann", ctypes.c_float), "float64": ("doublefann", ctypes.c_double)}
_INSTALL = "install the FANN C library, e.g. `apt-get install libfann2` (Debian/Ubuntu)"
_loaded = {}


class _Lib:
    """One of FANN's shared libraries, with its fann_type and the structures that use it."""

    def __init__(self, dll, fann_type, dtype):
        self.dll, self.T, self.dtype = dll, fann_type, np.dtype(dtype)
        T, vp, u, f = fann_type, ctypes.c_void_p, ctypes.c_uint, ctypes.c_float
        PT = ctypes.POINTER(T)

        class Connection(ctypes.Structure):  # struct fann_connection (fann_data.h)
            _fields_ = [("from_neuron", u), ("to_neuron", u), ("weight", T)]

        class TrainData(ctypes.Structure):  # struct fann_train_data (fann_train.h)
            _fields_ = [("errno_f", ctypes.c_int), ("error_log", vp), ("errstr", vp),
                        ("num_data", u), ("num_input", u), ("num_output", u),
                        ("input", ctypes.POINTER(PT)), ("output", ctypes.POINTER(PT))]

        class Head(ctypes.Structure):  # the start of struct fann (fann_data.h), float/double
            _fields_ = [("errno_f", ctypes.c_int), ("error_log", vp), ("errstr", vp),
                        ("learning_rate", f), ("learning_momentum", f),
                        ("connection_rate", f), ("network_type", ctypes.c_int),
                        ("first_layer", vp), ("last_layer", vp), ("total_neurons", u),
                        ("num_input", u), ("num_output", u), ("weights", PT),
                        ("connections", vp), ("train_errors", vp),
                        ("training_algorithm", ctypes.c_int), ("total_connections", u)]

        self.Connection, self.TrainData, self.Head = Connection, TrainData, Head
        for name, restype, argtypes in [
            ("fann_create_standard_array", vp, [u, ctypes.POINTER(u)]),
            ("fann_destroy", None, [vp]),
            ("fann_run", PT, [vp, PT]),
            ("fann_get_num_input", u, [vp]),
            ("fann_get_num_output", u, [vp]),
            ("fann_get_total_connections", u, [vp]),
            ("fann_get_connection_array", None, [vp, ctypes.POINTER(Connection)]),
            ("fann_set_weight_array", None, [vp, ctypes.POINTER(Connection), u]),
            ("fann_set_activation_function_hidden", None, [vp, ctypes.c_int]),
            ("fann_set_activation_function_output", None, [vp, ctypes.c_int]),
            ("fann_set_activation_steepness_hidden", None, [vp, T]),
            ("fann_set_activation_steepness_output", None, [vp, T]),
            ("fann_get_activation_steepness", T, [vp, ctypes.c_int, ctypes.c_int]),
            ("fann_set_train_error_function", None, [vp, ctypes.c_int]),
            ("fann_set_training_algorithm", None, [vp, ctypes.c_int]),
            ("fann_set_learning_rate", None, [vp, f]),
            ("fann_get_learning_rate", f, [vp]),
            ("fann_set_learning_momentum", None, [vp, f]),
            ("fann_set_rprop_increase_factor", None, [vp, f]),
            ("fann_set_rprop_decrease_factor", None, [vp, f]),
            ("fann_set_rprop_delta_min", None, [vp, f]),
            ("fann_set_rprop_delta_max", None, [vp, f]),
            ("fann_set_rprop_delta_zero", None, [vp, f]),
            ("fann_train_epoch", f, [vp, ctypes.POINTER(TrainData)]),
            ("fann_train_on_data", None, [vp, ctypes.POINTER(TrainData), u, u, f]),
            ("fann_get_MSE", f, [vp]),
            ("fann_get_errno", ctypes.c_int, [vp]),
            ("fann_get_errstr", ctypes.c_char_p, [vp]),
        ]:
            fn = getattr(dll, name)
            fn.restype, fn.argtypes = restype, argtypes
            setattr(self, name[5:], fn)  # fann_run -> self.run


def load(dtype="float32"):
    """The FANN library for ``dtype`` (float32: libfloatfann, float64: libdoublefann).

    Raises ImportError when it cannot be loaded.
    """
    dtype = np.dtype(dtype).name
    if dtype not in _LIBRARIES:
        raise ValueError(f"FANN supports float32 and float64, not {dtype}")
    if dtype not in _loaded:
        stem, fann_type = _LIBRARIES[dtype]
        errors = []
        for name in (ctypes.util.find_library(stem), f"lib{stem}.so.2", f"lib{stem}.so"):
            if not name:
                continue
            try:
                dll = ctypes.CDLL(name)
                break
            except OSError as exc:
                errors.append(str(exc))
        else:
            raise ImportError(f"the FANN library lib{stem} cannot be loaded "
                              f"({'; '.join(errors) or 'not found'}); {_INSTALL}")
        try:
            _loaded[dtype] = _Lib(dll, fann_type, dtype)
        except AttributeError as exc:  # a symbol missing: not FANN 2.2
            raise ImportError(f"lib{stem} lacks a FANN 2.2 function ({exc}); {_INSTALL}") from None
    return _loaded[dtype]


class FannNet:
    """A FANN network shaped like a fastbp one: sigmoid (logistic) or tanh units, linear
    error function (mse), momentum 0.

    Parameters
    ----------
    layer_sizes : sequence of int
    dtype : {"float32", "float64"}
    learning_rate : float
    algorithm : FANN_TRAIN_INCREMENTAL (online), FANN_TRAIN_BATCH (full batch) or
        FANN_TRAIN_RPROP (full batch iRprop-, FANN's default)
    hidden, output : {"sigmoid", "tanh"}
        Activations of the hidden and the output layers.
    rprop : dict, optional
        iRprop-'s settings as fastbp.Trainer names them: ``etas`` (decrease, increase),
        ``step_sizes`` (smallest, largest) and ``initial_step`` (fastbp's
        ``learning_rate``: the first step; FANN's ``delta_zero`` is set to
        ``initial_step / increase`` so that FANN's first step, ``delta_zero * increase``,
        is the same). FANN's iRprop- (fann_update_weights_irpropm) still differs from
        fastbp's (torch.optim.Rprop's) in details: after a sign flip FANN grows the step
        again at once where fastbp keeps it for one epoch; a zero slope steps up by the
        step size in FANN and not at all in fastbp; FANN floors the previous step at 1e-4
        before scaling it and clips weights to +-1500; and FANN clips activations inside
        their derivatives (sigmoid to [0.01, 0.99], tanh to [-0.98, 0.98]).
    shuffle_seed : int or None
        With a seed, every ``train_epoch`` visits the samples in the order
        ``numpy.random.default_rng(seed).permutation(n)`` gives, a new one per epoch, as
        ``fastbp.Trainer(shuffle=True, seed=seed)`` does; None keeps the data's order.

    ``close()`` (or garbage collection) frees the C network.
    """

    def __init__(self, layer_sizes, dtype="float32", learning_rate=0.01,
                 algorithm=FANN_TRAIN_INCREMENTAL, shuffle_seed=None, hidden="sigmoid",
                 output="sigmoid", rprop=None):
        self.lib = lib = load(dtype)
        self.dtype = lib.dtype
        self.sizes = [int(d) for d in layer_sizes]
        arr = (ctypes.c_uint * len(self.sizes))(*self.sizes)
        ann = lib.create_standard_array(len(self.sizes), arr)
        if not ann:
            raise MemoryError("fann_create_standard_array failed")
        self._ann = ann
        self._finalizer = weakref.finalize(self, lib.destroy, ann)
        for layer, name in (("hidden", hidden), ("output", output)):
            function, steepness = ACTIVATIONS[name]
            getattr(lib, f"set_activation_function_{layer}")(ann, function)
            getattr(lib, f"set_activation_steepness_{layer}")(ann, steepness)
        lib.set_train_error_function(ann, FANN_ERRORFUNC_LINEAR)
        if rprop is not None:
            (decrease, increase), (smallest, largest) = rprop["etas"], rprop["step_sizes"]
            lib.set_rprop_decrease_factor(ann, decrease)
            lib.set_rprop_increase_factor(ann, increase)
            lib.set_rprop_delta_min(ann, smallest)
            lib.set_rprop_delta_max(ann, largest)
            # FANN's first step is delta_zero * increase (a previous slope of 0 counts as
            # "same sign"); fastbp's (and torch.optim.Rprop's) is the initial step itself.
            lib.set_rprop_delta_zero(ann, rprop["initial_step"] / increase)
        lib.set_learning_momentum(ann, 0.0)
        lib.set_learning_rate(ann, float(learning_rate))
        lib.set_training_algorithm(ann, int(algorithm))
        self._rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)
        self.n_connections = int(lib.get_total_connections(ann))
        self._check_layout()
        self._weights_ptr = self._locate_weights()

    # -- lifetime ---------------------------------------------------------------------

    def close(self):
        """Free the C network (fann_destroy); idempotent."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def ann(self):
        if not self._finalizer.alive:
            raise ValueError("the FANN network is closed")
        return self._ann

    def _error(self, what):
        lib = self.lib
        if lib.get_errno(self.ann):
            msg = lib.get_errstr(self.ann)  # also resets the error
            raise RuntimeError(f"FANN {what}: {msg.decode(errors='replace').strip() if msg else ''}")

    # -- weights ----------------------------------------------------------------------

    def _connections(self):
        conns = (self.lib.Connection * self.n_connections)()
        self.lib.get_connection_array(self.ann, conns)
        return conns

    def _expected_layout(self):
        """(from, to) neuron numbers of the connections in fastbp's [W | b] row-major order."""
        D = self.sizes
        start = np.concatenate([[0], np.cumsum([d + 1 for d in D])])  # with bias neurons
        src, dst = [], []
        for m in range(1, len(D)):
            src.append(start[m - 1] + np.tile(np.arange(D[m - 1] + 1), D[m]))
            dst.append(start[m] + np.repeat(np.arange(D[m]), D[m - 1] + 1))
        return np.concatenate(src), np.concatenate(dst)

    def _check_layout(self):
        conns = np.ctypeslib.as_array(self._connections())
        src, dst = self._expected_layout()
        if (len(conns) != len(src) or not np.array_equal(conns["from_neuron"], src)
                or not np.array_equal(conns["to_neuron"], dst)):
            raise RuntimeError("FANN's connections are not laid out as FANN 2.2's "
                               "fann_create_standard_array lays them out")

    def _locate_weights(self):
        """``ann->weights`` (FANN's weight array, in connection order) when the mirrored
        start of struct fann agrees with the library's getters, else None."""
        lib, ann = self.lib, self.ann
        head = lib.Head.from_address(ann)
        ok = (head.total_connections == self.n_connections
              and head.num_input == lib.get_num_input(ann)
              and head.num_output == lib.get_num_output(ann)
              and head.learning_rate == lib.get_learning_rate(ann)
              and bool(head.weights))
        if ok:
            w = np.ctypeslib.as_array(head.weights, (self.n_connections,))
            ok = np.array_equal(w, np.ctypeslib.as_array(self._connections())["weight"])
        return head.weights if ok else None

    def set_params(self, weights, biases):
        """Load fastbp weights ``W[m]`` (D[m], D[m-1]) and biases ``b[m]`` (D[m],)."""
        flat = np.concatenate([np.hstack([np.asarray(W, self.dtype).reshape(d_out, d_in),
                                          np.asarray(b, self.dtype).reshape(d_out, 1)]).ravel()
                               for W, b, d_in, d_out in zip(weights, biases, self.sizes[:-1],
                                                            self.sizes[1:])])
        if flat.size != self.n_connections:
            raise ValueError(f"{flat.size} parameters for {self.n_connections} connections")
        if self._weights_ptr is not None:  # O(P) straight into ann->weights
            np.ctypeslib.as_array(self._weights_ptr, (self.n_connections,))[...] = flat
        elif self.n_connections <= 50_000:  # fann_set_weight searches: O(P^2)
            conns = self._connections()
            np.ctypeslib.as_array(conns)["weight"] = flat
            self.lib.set_weight_array(self.ann, conns, self.n_connections)
        else:
            raise RuntimeError("cannot reach FANN's weight array (not FANN 2.2's struct fann?) "
                               "and fann_set_weight_array is quadratic in the weights")

    def get_params(self):
        """(weights, biases) lists shaped like fastbp's, read with fann_get_connection_array."""
        flat = np.ctypeslib.as_array(self._connections())["weight"].astype(self.dtype)
        weights, biases, off = [], [], 0
        for d_in, d_out in zip(self.sizes[:-1], self.sizes[1:]):
            block = flat[off:off + d_out * (d_in + 1)].reshape(d_out, d_in + 1)
            off += block.size
            weights.append(block[:, :d_in].copy())
            biases.append(block[:, d_in].copy())
        return weights, biases

    # -- running and training ---------------------------------------------------------

    def run(self, X):
        """Outputs (n, D[L]) of fann_run, one sample at a time."""
        X = np.ascontiguousarray(np.atleast_2d(X), self.dtype)
        out = np.empty((X.shape[0], self.sizes[-1]), self.dtype)
        PT = ctypes.POINTER(self.lib.T)
        for i, row in enumerate(X):
            res = self.lib.run(self.ann, row.ctypes.data_as(PT))
            out[i] = np.ctypeslib.as_array(res, (self.sizes[-1],))
        return out

    def _train_data(self, X, Y, rows):
        """A fann_train_data over the rows of (X, Y) in ``rows``' order, pointing into X
        and Y (no copies). Returns (data, keep): keep holds the arrays the pointers reach,
        and must live as long as data is used."""
        lib = self.lib
        X = np.ascontiguousarray(X, self.dtype)
        Y = np.ascontiguousarray(Y, self.dtype)
        n = X.shape[0]
        if X.shape != (n, self.sizes[0]) or Y.shape != (n, self.sizes[-1]):
            raise ValueError(f"X {X.shape} and Y {Y.shape} do not fit {self.sizes}")
        # FANN's fann_train_data holds one pointer per sample: point them into X and Y.
        xp = X.ctypes.data + rows * np.uintp(X.strides[0])
        yp = Y.ctypes.data + rows * np.uintp(Y.strides[0])
        PPT = ctypes.POINTER(ctypes.POINTER(lib.T))
        data = lib.TrainData(0, None, None, n, self.sizes[0], self.sizes[-1],
                             xp.ctypes.data_as(PPT), yp.ctypes.data_as(PPT))
        return data, (X, Y, xp, yp)

    def train_epoch(self, X, Y):
        """One fann_train_epoch over (X, Y) as they are in memory (no copies when X and Y are
        C-contiguous of the network's dtype); returns FANN's MSE of the epoch."""
        n = np.shape(X)[0]
        rows = np.arange(n, dtype=np.uintp)
        if self._rng is not None:
            rows = rows[self._rng.permutation(n)]
        data, keep = self._train_data(X, Y, rows)
        start = time.perf_counter()
        mse = self.lib.train_epoch(self.ann, ctypes.byref(data))
        self.seconds = time.perf_counter() - start  # FANN's own work, for the bench
        self._error("fann_train_epoch")
        return float(mse)

    def train_on_data(self, X, Y, epochs):
        """``epochs`` epochs in one fann_train_on_data call, as FANN's users train: every
        epoch inside the C library, samples in the data's order (FANN does not shuffle),
        no reports, no early stop. Returns FANN's MSE of the last epoch (measured before
        its update); ``self.seconds`` holds the call's duration."""
        data, keep = self._train_data(X, Y, np.arange(np.shape(X)[0], dtype=np.uintp))
        start = time.perf_counter()
        # desired_error -1: FANN stops when the MSE is <= it, which a zero MSE would be.
        self.lib.train_on_data(self.ann, ctypes.byref(data), int(epochs), 0, -1.0)
        self.seconds = time.perf_counter() - start
        self._error("fann_train_on_data")
        return float(self.lib.get_MSE(self.ann))


def one_hot(y, n_classes, dtype):
    Y = np.zeros((len(y), n_classes), dtype)
    Y[np.arange(len(y)), np.asarray(y, np.int64)] = 1
    return Y


def fann_contender(net0, schedule, n):
    """The bench's FANN contender for ``net0`` (see fastbp.bench.torch_rival.torch_contender).

    Same layer sizes and initial weights as ``net0``, learning rate 0.01, momentum 0,
    samples visited in the order ``fastbp.Trainer(seed=0)`` visits them. The output layer
    differs: FANN has no softmax, so it is a sigmoid layer trained on the mse error (one-hot
    targets) instead of softmax + cross-entropy; the work per sample (multiply-adds in the
    forward pass, the backward pass and the update) is the same.

    ``schedule``: "online" (FANN_TRAIN_INCREMENTAL, one update per sample, the whole epoch
    inside fann_train_epoch) or "full" (FANN_TRAIN_BATCH). Raises RuntimeError for a batch
    size (FANN has no mini-batch training) and ImportError when libfann is not installed.
    """
    algorithm = {"online": FANN_TRAIN_INCREMENTAL, "full": FANN_TRAIN_BATCH}.get(schedule)
    if algorithm is None:
        raise RuntimeError(f"FANN has no mini-batch training (schedule {schedule!r})")
    load(net0.dtype)  # ImportError now, not in make()
    n_out = net0.layer_sizes[-1]

    def make():
        net = FannNet(net0.layer_sizes, dtype=net0.dtype, learning_rate=0.01,
                      algorithm=algorithm, shuffle_seed=0)
        net.set_params(net0.weights, net0.biases)

        def epoch(X, y):
            net.train_epoch(X, one_hot(y, n_out, net.dtype))
            return net.seconds
        epoch.fann = net
        epoch.close = net.close  # the network is freed with the closure, or by this
        return epoch, None
    return make
