"""What fastbp's scikit-learn estimators share: parameters, validation, the fit loop over a
Trainer, fitted views, and the parameter and attribute documentation
(``fastbp.estimators`` holds the two public classes).

scikit-learn is optional for fastbp as a whole and required by the estimators only.
"""
import numbers
import warnings

import numpy as np

try:
    import scipy.sparse as sp
    from sklearn.base import BaseEstimator, is_classifier
    from sklearn.exceptions import ConvergenceWarning, NotFittedError
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError("fastbp.estimators (MLPClassifier, MLPRegressor) needs scikit-learn "
                      ">= 1.6; install it with `pip install scikit-learn`") from exc

from fastbp import _validate, schedules
from fastbp.network import Network
from fastbp._session import _threads
from fastbp.trainer import SCHEDULES, Trainer

# scikit-learn's activation names -> fastbp's ("sigmoid" is accepted as well).
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "sigmoid": "sigmoid",
                "tanh": "tanh", "relu": "relu"}


def _sgd_options(est):
    """Trainer keywords for plain gradient descent with classical or Nesterov momentum."""
    return dict(momentum=est.momentum,
                nesterov=bool(est.nesterovs_momentum) and est.momentum > 0)


def _adam_options(est):
    """Trainer keywords for Adam."""
    return dict(optimizer="adam", betas=(est.beta_1, est.beta_2), eps=est.epsilon)


def _rprop_options(est):
    """Trainer keywords for RPROP (learning_rate_init is the initial step size)."""
    return dict(optimizer="rprop")


# solver name -> function(estimator) -> keyword arguments for fastbp.Trainer beyond
# those every solver shares (schedule, batch size, learning rate, l2, shuffle, seed,
# backend). A new Trainer optimizer is one entry here, plus its parameters in __init__.
_SOLVERS = {"sgd": _sgd_options, "adam": _adam_options, "rprop": _rprop_options}

# scikit-learn's learning_rate names -> fastbp.schedules, per epoch (scikit-learn's
# "invscaling" counts samples; "adaptive" divides by 5 after 2 epochs without a gain).
_LEARNING_RATES = {
    "constant": lambda est: None,
    "invscaling": lambda est: schedules.InverseScaling(decay=1.0, power=est.power_t),
    "adaptive": lambda est: schedules.ReduceOnPlateau(factor=0.2, patience=1,
                                                      threshold=est.tol),
}

_SEED_HIGH = 2 ** 31 - 1


class _Diverged(ValueError, FloatingPointError):
    """A fit diverged. scikit-learn raises ValueError ("Solver produced non-finite
    parameter weights...") and fastbp documents FloatingPointError: this is both, so code
    written for either catches it."""


def _dense(X):
    """X as the dense C-ordered array the kernels train on (a no-op for dense X).

    Sparse X is densified once per fit, not per batch: the loop backend runs a whole
    epoch, every batch of it in a shuffled order, inside one compiled call that indexes
    the rows of one dense X, so a per-batch conversion would mean one Python call per
    batch (or a sparse-aware kernel). The cost is one dense copy of X in the network's
    dtype (X is already cast while sparse, so no second copy is made); ``partial_fit``
    on chunks of rows bounds it. Prediction densifies in chunks (``_PREDICT_ROWS``).
    """
    if not sp.issparse(X):
        return X
    try:
        return X.toarray()
    except MemoryError:
        need = X.shape[0] * X.shape[1] * X.dtype.itemsize
        raise MemoryError(
            f"sparse X of shape {X.shape} needs {need / 2 ** 30:.1f} GiB as the dense "
            f"{X.dtype} array fastbp trains on; train on chunks of rows with partial_fit, "
            "use fewer features, or dtype='float32'") from None


# Rows of a sparse X densified at a time in predict: bounds its memory to this many rows.
_PREDICT_ROWS = 4096


class _ParameterList(list):
    """``coefs_`` / ``intercepts_``: a list of views into the network's parameters.

    Writing into an item (``coefs_[0][...] = W``) or assigning one (``coefs_[0] = W``)
    changes the network; the latter copies W in after a shape check. The list's length
    is the network's number of layers and cannot change.
    """

    def __init__(self, name, views):
        super().__init__(views)
        self._name = name

    def __setitem__(self, index, value):
        if not isinstance(index, numbers.Integral):
            raise TypeError(f"{self._name} items are assigned one at a time, by an "
                            f"integer index; got {index!r}")
        view = self[index]
        view[...] = _checked_item(self._name, index % len(self), view, value)

    def _fixed_length(self, *args, **kwargs):
        raise TypeError(f"{self._name} holds one array per layer of network_; its length "
                        "cannot change")

    append = extend = insert = pop = remove = clear = __delitem__ = __iadd__ = _fixed_length
    sort = reverse = _fixed_length

    def __reduce__(self):
        # pickle and copy.deepcopy give a plain list of arrays (copies, not views)
        return list, (list(self),)


def _checked_item(name, i, view, value):
    """value as an array of view's shape (ValueError naming ``name[i]`` otherwise)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}[{i}] must hold real numbers; got dtype {arr.dtype}")
    if arr.shape != view.shape:
        raise ValueError(f"{name}[{i}] must have shape {view.shape}; got {arr.shape}")
    return arr


class _BaseMLP(BaseEstimator):
    """Shared fit/partial_fit machinery; the subclasses say how targets are encoded."""

    # One signature for both estimators (get_params reads it). A new solver's own
    # parameters (say beta_1, beta_2 for adam) go here and into its _SOLVERS entry.
    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=1e-4, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, momentum=0.9,
                 nesterovs_momentum=True, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, backend="loop",
                 dtype=None, schedule="minibatch", threads=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.dtype = dtype
        self.schedule = schedule
        self.threads = threads

    # -- hooks for the subclasses -------------------------------------------------------

    def _validate_targets(self, X, y, reset, incremental, dtype, binarizer=None):
        """(X, Y, y_score, targets): X validated to ``dtype`` (sparse CSR/CSC kept
        sparse), the (n, n_outputs) target matrix the network trains on, y in the form
        ``_score_arrays`` compares against, and the fitted attributes of the targets'
        encoding (a dict, assigned to the estimator only once the fit can go ahead).
        ``binarizer``: the classifier's label encoding from partial_fit's ``classes``."""
        raise NotImplementedError

    def _output(self, targets):
        """(output activation, loss) of the network, for the targets' encoding."""
        raise NotImplementedError

    def _score_arrays(self, X, y, sample_weight):
        """Validation score (higher is better) of already validated dense arrays; NaN
        when the network's output is not finite (a diverging fit), as scikit-learn."""
        raise NotImplementedError

    # -- parameters ---------------------------------------------------------------------

    def _check_params(self):
        """Validate the constructor parameters; return the derived settings as a dict.

        Called at the start of every fit and partial_fit, before anything changes
        (scikit-learn validates in fit, never in ``__init__`` or ``set_params``).
        """
        _validate.choice("solver", self.solver, _SOLVERS)
        _validate.choice("learning_rate", self.learning_rate, _LEARNING_RATES)
        _validate.real("power_t", self.power_t, 0.0)
        for name in ("beta_1", "beta_2"):
            _validate.real(name, getattr(self, name), 0.0, True, high=1.0)
        _validate.real("epsilon", self.epsilon, 0.0, False)
        _validate.choice("activation", self.activation, _ACTIVATIONS)
        _validate.choice("schedule", self.schedule, SCHEDULES)
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if isinstance(hidden, numbers.Integral) else list(hidden)
        if any(isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1
               for h in hidden):
            raise ValueError("hidden_layer_sizes must be positive integers; got "
                             f"{self.hidden_layer_sizes!r}")
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            if (isinstance(self.batch_size, bool)
                    or not isinstance(self.batch_size, numbers.Integral)
                    or self.batch_size < 1):
                raise ValueError(f"batch_size must be 'auto' or a positive integer; got "
                                 f"{self.batch_size!r}")
        _validate.real("alpha", self.alpha, 0.0)
        _validate.real("learning_rate_init", self.learning_rate_init, 0.0, False)
        _validate.real("momentum", self.momentum, 0.0, True, high=1.0)
        _validate.positive_int("max_iter", self.max_iter)
        _validate.real("tol", self.tol, 0.0)
        if not (self.n_iter_no_change == np.inf
                or (isinstance(self.n_iter_no_change, numbers.Integral)
                    and not isinstance(self.n_iter_no_change, bool)
                    and self.n_iter_no_change >= 1)):
            raise ValueError("n_iter_no_change must be a positive integer or np.inf; got "
                             f"{self.n_iter_no_change!r}")
        if self.early_stopping:
            _validate.real("validation_fraction", self.validation_fraction, 0.0, False,
                           high=1.0)
        _validate.threads(self.threads)
        return dict(hidden=[int(h) for h in hidden],
                    activation=_ACTIVATIONS[self.activation],
                    dtype=None if self.dtype is None else _validate.as_dtype(self.dtype))

    def _batch_size(self, n_samples):
        """min(200, n) for 'auto', else batch_size clipped to n (with a warning)."""
        if isinstance(self.batch_size, str):
            return min(200, n_samples)
        if self.batch_size > n_samples and self.schedule == "minibatch":
            warnings.warn(f"batch_size={self.batch_size} is larger than the {n_samples} "
                          "training samples; it is clipped to their number", UserWarning)
        return int(min(self.batch_size, n_samples))

    def _trainer_options(self, seed):
        """Keyword arguments of the fastbp.Trainer this estimator's parameters ask for."""
        return dict(schedule=self.schedule, batch_size=1,  # set per call, see _fit
                    learning_rate=self.learning_rate_init, l2=self.alpha,
                    shuffle=bool(self.shuffle), seed=seed, backend=self.backend,
                    threads=self.threads,
                    lr_schedule=_LEARNING_RATES[self.learning_rate](self),
                    **_SOLVERS[self.solver](self))

    def _sample_weight(self, sample_weight, X):
        """Weights as scikit-learn checks them, in X's dtype (as scikit-learn: the
        weighted mean then rounds as the data do), or None."""
        if sample_weight is None:
            return None
        sw = _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
        if not sw.any():  # scikit-learn < 1.9 lets this through; Trainer.fit does not
            raise ValueError("sample_weight is zero everywhere: there is no sample weight "
                             "to learn from")
        return sw

    # -- training -----------------------------------------------------------------------

    def _fit(self, X, y, sample_weight, incremental, binarizer=None):
        # Validation, the targets' encoding, the new network and the early-stopping split
        # are made in locals: the estimator changes only once all of them succeeded, so a
        # (re)fit that fails before training leaves it as it was. validate_data sets
        # n_features_in_ / feature_names_in_ itself; those are put back on failure.
        before = dict(vars(self))
        try:
            (X, Y, sw, net, first, trainer, trainer_options, targets, X_val, y_val,
             sw_val) = self._prepare_fit(X, y, sample_weight, incremental, binarizer)
        except BaseException:
            vars(self).clear()
            vars(self).update(before)
            raise
        trainer.batch_size = targets.pop("_batch")
        vars(self).update(targets)  # classes_ and the label binarizer (classifier)
        trainer.threads = self.threads  # checked by _check_params; may change between calls
        if first:
            self.network_ = net
            self.n_layers_ = len(net.layer_sizes)
            self.n_outputs_ = Y.shape[1]
            self.out_activation_ = {"sigmoid": "logistic"}.get(net.activations[-1],
                                                              net.activations[-1])
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_, self.best_validation_score_ = [], -np.inf
                self.best_loss_ = None
            else:
                self.validation_scores_ = self.best_validation_score_ = None
                self.best_loss_ = np.inf
        # Rebuilding the Trainer after unpickling needs the arguments it was made with.
        self._trainer, self._trainer_kwargs = trainer, trainer_options
        self.n_iter_ = 0
        best = [net.params.copy()] if self.early_stopping else None

        def after_epoch(epoch, history):
            return self._after_epoch(history.loss[-1], net, best, X_val, y_val, sw_val)

        epochs = 1 if incremental else self.max_iter
        try:
            with _threads(self.threads):  # also for the validation scoring
                history = trainer.fit(X, Y, epochs=epochs, callback=after_epoch,
                                      sample_weight=sw)
        except FloatingPointError as exc:
            detail = (f"{type(self).__name__}: {exc} The estimator was trained with "
                      f"learning_rate_init={self.learning_rate_init}.")
            if not self.early_stopping:
                raise _Diverged("Solver produced non-finite parameter weights. The input "
                                "data may contain large values and need to be "
                                f"preprocessed. ({detail})") from exc
            # As scikit-learn: the diverged epoch scores NaN, the best weights are kept.
            self.n_iter_ += 1
            self.loss_curve_.append(np.nan)
            self.loss_ = np.nan
            self.validation_scores_.append(np.nan)
            net.params[...] = best[0]
            warnings.warn(f"{detail} Training stopped; the weights of the best validation "
                          "score are kept.", ConvergenceWarning)
            return self
        if best is not None:
            net.params[...] = best[0]
        if incremental:
            return self
        if history.stopped_early:
            if self.verbose:
                what = "Validation score" if self.early_stopping else "Training loss"
                print(f"{what} did not improve more than tol={self.tol:f} for "
                      f"{self.n_iter_no_change} consecutive epochs. Stopping.")
        else:
            warnings.warn(f"{type(self).__name__}: maximum iterations ({self.max_iter}) "
                          "reached and the optimization hasn't converged yet.",
                          ConvergenceWarning)
        return self

    def _prepare_fit(self, X, y, sample_weight, incremental, binarizer):
        """Everything a fit needs before it changes the estimator (see ``_fit``)."""
        settings = self._check_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        fitted = hasattr(self, "network_")
        first = not fitted or not (self.warm_start or incremental)
        # The network's dtype: dtype= if given, else the input's as scikit-learn has it
        # (float32 stays float32, anything else becomes float64); a network that goes on
        # training keeps its own.
        dtype = (settings["dtype"] or (np.float64, np.float32)) if first else self.network_.dtype
        X, Y, y_score, targets = self._validate_targets(
            X, y, reset=first, incremental=incremental, dtype=dtype, binarizer=binarizer)
        sw = self._sample_weight(sample_weight, X)
        rng = check_random_state(self.random_state)
        if first:
            settings["dtype"] = X.dtype
            net = self._new_network(X.shape[1], Y.shape[1], settings, rng, targets)
        else:
            net = self.network_
            self._check_warm_network(net, Y.shape[1], settings)
        if incremental and fitted:
            trainer = self._trainer  # momentum (optimizer state) carries over
            trainer_options = self._trainer_kwargs
        else:
            trainer_options = self._trainer_options(int(rng.randint(_SEED_HIGH)))
            trainer = Trainer(net, **trainer_options)

        X_val = y_val = sw_val = None
        if self.early_stopping:
            X, X_val, Y, y_score, y_val, sw, sw_val = self._split(X, Y, y_score, sw, rng)
        if sw is not None and not sw.any():
            raise ValueError("sample_weight is zero on every training sample left after "
                             "the early-stopping split")
        X, X_val = _dense(X), _dense(X_val)
        targets["_batch"] = self._batch_size(X.shape[0])
        return (X, Y, sw, net, first, trainer, trainer_options, targets, X_val, y_val,
                sw_val)

    def _split(self, X, Y, y_score, sw, rng):
        """The early-stopping split, made as scikit-learn makes it: stratified only for
        one output column (binary or one-class y, on the 0/1 column: so the classes are
        named 'True'/'False' in its errors), never for multiclass or multilabel y nor for
        regression. Returns the training then the validation X, Y-and-y_score, weights."""
        stratify = Y.astype(bool) if is_classifier(self) and Y.shape[1] == 1 else None
        arrays = [X, Y, y_score] + ([] if sw is None else [sw])
        parts = train_test_split(*arrays, test_size=self.validation_fraction,
                                 random_state=rng, stratify=stratify)
        X, X_val, Y, _, y_score, y_val = parts[:6]
        sw, sw_val = parts[6:] if sw is not None else (None, None)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset.")
        if sw_val is not None and not sw_val.any():
            raise ValueError("sample_weight is zero on every sample of the early-stopping "
                             "validation split; it cannot be scored")
        return X, X_val, Y, y_score, y_val, sw, sw_val

    def _after_epoch(self, loss, net, best, X_val, y_val, sw_val):
        """Record an epoch as scikit-learn does; True stops training."""
        self.n_iter_ += 1
        self.loss_curve_.append(loss)
        self.loss_ = loss
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
        if self.early_stopping:
            score = self._score_arrays(X_val, y_val, sw_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            improved = score >= self.best_validation_score_ + self.tol
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                best[0] = net.params.copy()
        else:
            # None: network_ was fitted with early_stopping, which tracks no best loss
            best_loss = np.inf if self.best_loss_ is None else self.best_loss_
            improved = self.loss_ <= best_loss - self.tol
            self.best_loss_ = min(best_loss, self.loss_)
        self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
        return self._no_improvement_count > self.n_iter_no_change

    def _new_network(self, n_in, n_out, settings, rng, targets):
        out_activation, loss = self._output(targets)
        sizes = [n_in, *settings["hidden"], n_out]
        activations = [settings["activation"]] * len(settings["hidden"]) + [out_activation]
        return Network(sizes, activations=activations, loss=loss, dtype=settings["dtype"],
                       seed=int(rng.randint(_SEED_HIGH)))

    def _check_warm_network(self, net, n_out, settings):
        """warm_start / partial_fit continue training network_: it must still fit."""
        want = [net.layer_sizes[0], *settings["hidden"], n_out]
        if net.layer_sizes != want:
            raise ValueError(f"{type(self).__name__} was fitted with layer sizes "
                             f"{net.layer_sizes}; the current hidden_layer_sizes and targets "
                             f"need {want}. Set warm_start=False to fit a new network.")
        dtype_changed = settings["dtype"] is not None and net.dtype != settings["dtype"]
        if dtype_changed or (settings["hidden"]
                             and net.activations[0] != settings["activation"]):
            raise ValueError("dtype and activation cannot change between warm-started or "
                             "partial fits; set warm_start=False to fit a new network.")

    # -- fitting and prediction ---------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Train the network on (X, y) for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training inputs (CSR or CSC sparse matrices are densified, see Notes).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets: class labels, or a 0/1 indicator matrix for multilabel
            classification (``MLPClassifier``); real values (``MLPRegressor``).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample (see Notes); None weighs all alike.

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        ValueError, FloatingPointError
            One exception of both classes when training diverges (not finite) without
            ``early_stopping``; its message starts as scikit-learn's.

        Warns
        -----
        ConvergenceWarning
            When ``max_iter`` epochs ran without the stopping criterion being met, or a
            fit with ``early_stopping`` diverged (it keeps the best epoch's weights).
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "network_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _forward(self, X):
        """Network outputs for X, validated against the fit, shape (n, n_outputs).

        The network computes in its dtype; the outputs come in the dtype NumPy promotes
        X's floating dtype and the network's to (float64 unless both are float32), which
        is the dtype scikit-learn's own matrix products give.
        """
        check_is_fitted(self)
        net = self.network_
        X = validate_data(self, X, reset=False, accept_sparse=("csr", "csc"),
                          dtype=(np.float64, np.float32))
        dtype = np.result_type(X.dtype, net.dtype)
        with _threads(self.threads):
            if not sp.issparse(X):
                return net.forward(X, backend=self.backend).astype(dtype, copy=False)
            X = X.tocsr().astype(net.dtype, copy=False)
            out = np.empty((X.shape[0], net.layer_sizes[-1]), dtype)
            for lo in range(0, X.shape[0], _PREDICT_ROWS):
                out[lo:lo + _PREDICT_ROWS] = net.forward(X[lo:lo + _PREDICT_ROWS].toarray(),
                                                         backend=self.backend)
            return out

    # -- fitted views -------------------------------------------------------------------

    def _fitted_network(self, name):
        if not hasattr(self, "network_"):
            raise NotFittedError(f"{name} exists once {type(self).__name__} is fitted: it "
                                 "is a view of network_")
        return self.network_

    def _assign(self, name, views, values):
        values = list(values)
        if len(values) != len(views):
            raise ValueError(f"{name} needs {len(views)} arrays, one per layer; got "
                             f"{len(values)}")
        checked = [_checked_item(name, i, v, a) for i, (v, a) in enumerate(zip(views, values))]
        for view, arr in zip(views, checked):  # all checked before any is written
            view[...] = arr

    @property
    def coefs_(self):
        """List of weight matrices, ``coefs_[i]`` of shape (n_in, n_out): transposed
        views of ``network_.weights``. Writes into them, item assignment
        (``coefs_[i] = W``) and assignment of a whole list copy into the network."""
        return _ParameterList("coefs_", [W.T for W in self._fitted_network("coefs_").weights])

    @coefs_.setter
    def coefs_(self, values):
        self._assign("coefs_", self.coefs_, values)

    @property
    def intercepts_(self):
        """List of bias vectors, ``intercepts_[i]`` of shape (n_out,): views of
        ``network_.biases``; assignable as ``coefs_``."""
        return _ParameterList("intercepts_", self._fitted_network("intercepts_").biases)

    @intercepts_.setter
    def intercepts_(self, values):
        self._assign("intercepts_", self.intercepts_, values)


_PARAMETERS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer; ``()`` gives a network without hidden layers.
    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
        Activation of the hidden layers (``"logistic"`` is fastbp's ``"sigmoid"``,
        which is accepted too).
    solver : {"adam", "sgd", "rprop"}, default="adam"
        The optimizer of :class:`fastbp.Trainer`: Adam, gradient descent with classical
        or Nesterov momentum, or RPROP (iRprop-; ``learning_rate_init`` is its initial
        step size; best with ``schedule="fullbatch"``).
    alpha : float, default=1e-4
        L2 penalty ``(alpha / 2) * sum W**2`` added to the *mean* per-sample cost of each
        update (fastbp's ``Trainer(l2=alpha)``); biases are not penalized. scikit-learn
        divides its ``alpha`` by the batch size, so its ``alpha=a`` corresponds to
        ``alpha=a / batch_size`` here.
    batch_size : int or "auto", default="auto"
        Samples per update of the ``"minibatch"`` schedule; ``"auto"`` is
        ``min(200, n_samples)``. Larger values are clipped to ``n_samples``.
    learning_rate_init : float, default=0.001
        Step size (RPROP: initial step size). The default is scikit-learn's and suits
        Adam; with standardized inputs and targets plain SGD often does better with 0.01
        to 0.1 (larger steps can diverge on unscaled targets, see ``fit``).
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Per-epoch schedule of the step size (:mod:`fastbp.schedules`): ``"invscaling"``
        is ``learning_rate_init / (1 + epoch) ** power_t`` (scikit-learn counts samples
        instead of epochs); ``"adaptive"`` divides it by 5 whenever two epochs in a row
        do not improve the training loss by a relative ``tol``.
    power_t : float, default=0.5
        Exponent of ``"invscaling"``.
    momentum : float, default=0.9
        Momentum in [0, 1) of ``solver="sgd"``: ``v <- momentum * v + g``,
        ``w <- w - learning_rate_init * v`` (for a constant step the same iterates as
        scikit-learn's formulation).
    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum (``solver="sgd"``; ignored when ``momentum == 0``).
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and denominator term (``solver="adam"``).
    max_iter : int, default=200
        Maximum number of epochs (passes over the training data) per ``fit``.
    shuffle : bool, default=True
        Visit the samples in a new random order every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialization, the shuffling and the early-stopping split.
        An int gives reproducible fits.
    tol : float, default=1e-4
        Improvement that counts: training stops when the training loss (or, with
        ``early_stopping``, the validation score) has not improved by at least ``tol``
        for more than ``n_iter_no_change`` consecutive epochs.
    verbose : bool, default=False
        Print the loss (and validation score) after every epoch.
    warm_start : bool, default=False
        Continue from the fitted network on the next ``fit`` instead of starting anew.
        The optimizer state (momentum) restarts with every ``fit``; it carries over
        between ``partial_fit`` calls.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data, score it after every
        epoch, stop when the score stalls (see ``tol``) and keep the weights of the best
        epoch. Not available in ``partial_fit``.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping, in (0, 1).
    n_iter_no_change : int or np.inf, default=10
        Epochs without an improvement of ``tol`` tolerated before stopping.
    backend : {"loop", "vectorized", "cuda"}, default="loop"
        fastbp kernel backend used for training and prediction.
    dtype : {None, "float32", "float64"}, default=None
        Precision of the network's parameters, arithmetic and predictions. None follows
        the training data, as scikit-learn does: float32 X trains in float32, any other
        X in float64. Inputs are converted to it; ``"float32"`` is about twice as fast.
        Predictions come in float64 unless both the network and X are float32.
    schedule : {"minibatch", "online", "fullbatch"}, default="minibatch"
        Update schedule: one update per ``batch_size`` samples, per sample, or per epoch.
    threads : int or None, default=None
        CPU threads the ``loop`` kernels may use for this estimator's fits and
        predictions (:class:`fastbp.Trainer`'s ``threads``); None: all of Numba's
        threads. Results do not depend on it. Under ``n_jobs`` or a Dask cluster, where
        several fits share the cores, ``threads=1`` avoids oversubscription.
"""

_ATTRIBUTES_DOC = """
    loss_ : float
        Training loss of the last epoch.
    loss_curve_ : list of float
        Training loss of every epoch, across warm-started fits and ``partial_fit`` calls:
        the mean per-sample cost of the samples seen in the epoch, each computed in the
        forward pass that produced its gradient, without the L2 term.
    best_loss_ : float or None
        Lowest value in ``loss_curve_``; None with ``early_stopping``.
    validation_scores_ : list of float or None
        Validation score after every epoch with ``early_stopping``, else None.
    best_validation_score_ : float or None
        Best of ``validation_scores_`` with ``early_stopping``, else None.
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during fit, when X had string column names.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of output units.
    out_activation_ : str
        Activation of the output layer.
    network_ : fastbp.Network
        The trained network.
    coefs_ : list of ndarray
        ``coefs_[i]`` has shape (n_in, n_out), scikit-learn's orientation: a transposed
        view of ``network_.weights[i]``, which fastbp stores as (n_out, n_in). Writes
        into the views, ``coefs_[i] = W`` and ``coefs_ = [...]`` change the network.
    intercepts_ : list of ndarray
        ``intercepts_[i]`` has shape (n_out,): a view of ``network_.biases[i]``,
        assignable as ``coefs_``.
"""

_NOTES_DOC = """
    Sparse X (CSR or CSC) is densified once per ``fit`` in the network's dtype, because
    the loop kernels run an epoch's shuffled batches in one compiled call over a dense X;
    ``partial_fit`` on chunks of rows bounds that memory. ``predict`` densifies 4096 rows
    at a time.

    With ``sample_weight`` every update follows the weighted mean gradient of its batch,
    ``sum w g / sum w`` (a batch whose weights are all 0 makes no update), ``loss_curve_``
    is the weighted mean cost and the early-stopping score is weighted. Integer weights
    equal repeating rows only when each epoch is one full batch (``schedule="fullbatch"``,
    or ``batch_size`` covering the data): with smaller batches repeated rows land in
    different batches; with ``schedule="online"`` a weight only tells 0 from not 0.

    Differences from scikit-learn's MLP estimators, each for a reason:

    - no ``"lbfgs"`` solver (fastbp's kernels are stochastic-gradient trainers) and no
      ``max_fun``; ``"rprop"`` is added;
    - ``alpha`` is not divided by the batch size (nor by the sum of the weights): it is
      ``fastbp.Trainer``'s ``l2``, and weights are scale-free (scaling all by c changes
      nothing, where scikit-learn's penalty would change by 1/c);
    - ``"invscaling"`` counts epochs and restarts with every ``fit`` (fastbp's schedules
      are per epoch, as the kernels run whole epochs); ``"adaptive"`` is
      ``ReduceOnPlateau`` and does not postpone stopping;
    - weights start from Glorot-uniform (He-normal for relu) draws and biases at zero
      (``fastbp.Network``'s initialization);
    - a diverging fit without ``early_stopping`` stops at the first non-finite loss and
      keeps the last finite weights (fastbp's Trainer checks every epoch), raising an
      exception that is both scikit-learn's ValueError and fastbp's FloatingPointError;
    - ``loss_curve_`` of a multi-output regressor sums the per-output costs (fastbp's
      ``mse``), where scikit-learn averages them: ``tol`` acts on that scale;
    - no ``t_`` attribute; ``network_`` gives the trained :class:`fastbp.Network`;
    - for a ``y`` with one class, ``predict_proba`` has one column of ones (columns
      follow ``classes_``), where scikit-learn returns two.
"""

# partial_fit's docstring, completed per estimator: y's description, extra parameters.
_PARTIAL_FIT_DOC = """Train for one epoch over (X, y), continuing from the current network.

        The optimizer state (momentum, Adam's moments) carries over from one call to
        the next.

        Parameters
        ----------
        X : {{array-like, sparse matrix}} of shape (n_samples, n_features)
            Training inputs.
        y : {y}
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample; None weighs all alike.{extra}

        Returns
        -------
        self : {name}
            The updated estimator.
        """

# The X parameter of predict, predict_proba and predict_log_proba.
_PREDICT_X_DOC = """
        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Inputs.
"""


def _class_doc(name, intro, examples, attributes=""):
    """The numpydoc docstring of estimator ``name``: its own introduction, extra
    attributes and examples around the sections both estimators share."""
    other = {"MLPClassifier": "MLPRegressor", "MLPRegressor": "MLPClassifier"}[name]
    role = {"MLPClassifier": "classification", "MLPRegressor": "regression"}[other]
    return (intro + _PARAMETERS_DOC + "\n    Attributes\n    ----------" + attributes
            + _ATTRIBUTES_DOC + f"""
    See Also
    --------
    {other} : the {role} counterpart.
    sklearn.neural_network.{name} : the estimator this one mirrors.

    Notes
    -----""" + _NOTES_DOC + "\n    Examples\n    --------\n" + examples)
