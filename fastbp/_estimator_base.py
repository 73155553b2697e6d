"""What fastbp's scikit-learn estimators share: the constructor, the fit loop over a
Trainer (or the L-BFGS solver), fitting that leaves a failed refit's estimator as it was,
and prediction. ``fastbp.estimators`` holds the two public classes; their parameters are
checked and translated in ``_estimator_params``, ``coefs_``/``intercepts_`` live in
``_estimator_views``, the L-BFGS solver in ``_lbfgs`` and the documentation in
``_estimator_docs``.

scikit-learn is optional for fastbp as a whole and required by the estimators only.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

try:
    import scipy.sparse as sp
    from sklearn.base import BaseEstimator, is_classifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError("fastbp.estimators (MLPClassifier, MLPRegressor) needs scikit-learn "
                      ">= 1.6; install it with `pip install scikit-learn`") from exc

from fastbp import _estimator_params as params
from fastbp import _lbfgs
from fastbp._estimator_docs import FIT_DOC, TO_ONNX_DOC, fill
from fastbp._estimator_views import FittedViews
from fastbp._session import numba_threads
from fastbp.network import Network
from fastbp.trainer import Trainer

if TYPE_CHECKING:
    import onnx
    from typing_extensions import Self

# What the estimators take as X: arrays, and SciPy's sparse CSR/CSC matrices and arrays.
MatrixLike = Any

_SEED_HIGH = 2 ** 31 - 1

# Rows of a sparse X densified at a time in predict: bounds its memory to this many rows.
_PREDICT_ROWS = 4096


class Diverged(ValueError, FloatingPointError):
    """A fit diverged. scikit-learn raises ValueError ("Solver produced non-finite
    parameter weights...") and fastbp documents FloatingPointError: this is both, so code
    written for either catches it."""


def _diverged(detail):
    return Diverged("Solver produced non-finite parameter weights. The input data may "
                    f"contain large values and need to be preprocessed. ({detail})")


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


def stochastic_only(est):
    """Whether ``partial_fit`` exists (``sklearn.utils.metaestimators.available_if``):
    for every solver but "lbfgs", which optimizes over all the data at once, as in
    scikit-learn (so ``hasattr(est, "partial_fit")`` tells)."""
    if est.solver == "lbfgs":
        raise AttributeError("partial_fit is only available for the stochastic solvers "
                             "('adam', 'sgd', 'rprop'); solver='lbfgs' fits on all the "
                             "data at once")
    return True


class BaseMLP(FittedViews, BaseEstimator):
    """Shared fit/partial_fit machinery; the subclasses say how targets are encoded."""

    # One signature for both estimators (get_params reads it; MLPClassifier adds
    # class_weight). A new solver's own parameters (say beta_1, beta_2 for adam) go here
    # and into its entry of _estimator_params.SOLVERS.
    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,),
                 activation: str = "relu", *, solver: str = "adam", alpha: float = 1e-4,
                 batch_size: int | str = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5,
                 momentum: float = 0.9, nesterovs_momentum: bool = True,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 max_iter: int = 200, shuffle: bool = True,
                 random_state: int | np.random.RandomState | None = None,
                 tol: float = 1e-4, verbose: bool = False, warm_start: bool = False,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, max_fun: int = 15000, backend: str = "loop",
                 dtype: DTypeLike | None = None, schedule: str = "minibatch",
                 threads: int | None = None) -> None:
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
        self.max_fun = max_fun
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

    def _class_sample_weight(self, y, incremental):
        """Per-sample weights (float64, (n,)) that the estimator's class weights give the
        validated targets y, or None (the regressor; a classifier without them)."""
        return None

    # -- sample weights -----------------------------------------------------------------

    def _sample_weight(self, sample_weight, X, y, incremental):
        """Weights as scikit-learn checks them, times the class weights, in X's dtype (as
        scikit-learn: the weighted mean then rounds as the data do), or None. The product
        is taken in float64 and rounded once: the weights a user would pass by hand."""
        by_class = self._class_sample_weight(y, incremental)
        if sample_weight is None and by_class is None:
            return None
        dtype = X.dtype if by_class is None else np.float64
        sw = (None if sample_weight is None else
              _check_sample_weight(sample_weight, X, dtype=dtype, ensure_non_negative=True))
        if by_class is not None:
            sw = (by_class if sw is None else by_class * sw).astype(X.dtype)
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
        batch_size = targets.pop("_batch")
        vars(self).update(targets)  # classes_ and the label binarizer (classifier)
        if first:
            self._start_records(net, Y.shape[1])
        # Rebuilding the Trainer after unpickling needs the arguments it was made with.
        self._trainer, self._trainer_kwargs = trainer, trainer_options
        self.n_iter_ = 0
        if trainer is None:
            return self._fit_lbfgs(X, Y, sw, net)
        trainer.batch_size = batch_size
        trainer.threads = self.threads  # checked by params.check; may change between calls
        if self.early_stopping and self.validation_scores_ is None:  # after a fit without
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        best = [net.params.copy()] if self.early_stopping else None

        def after_epoch(epoch, history):
            return self._after_epoch(history.loss[-1], net, best, X_val, y_val, sw_val)

        epochs = 1 if incremental else self.max_iter
        try:
            with numba_threads(self.threads):  # also for the validation scoring
                history = trainer.fit(X, Y, epochs=epochs, callback=after_epoch,
                                      sample_weight=sw)
        except FloatingPointError as exc:
            detail = (f"{type(self).__name__}: {exc} The estimator was trained with "
                      f"learning_rate_init={self.learning_rate_init}.")
            if not self.early_stopping:
                raise _diverged(detail) from exc
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

    def _start_records(self, net, n_outputs):
        """The fitted attributes a first fit starts from (scikit-learn's ``_initialize``);
        "lbfgs" tracks no best loss and no validation scores."""
        self.network_ = net
        self.n_layers_ = len(net.layer_sizes)
        self.n_outputs_ = n_outputs
        self.out_activation_ = {"sigmoid": "logistic"}.get(net.activations[-1],
                                                          net.activations[-1])
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self.validation_scores_ = self.best_validation_score_ = self.best_loss_ = None
        if self.solver != "lbfgs":
            if self.early_stopping:
                self.validation_scores_, self.best_validation_score_ = [], -np.inf
            else:
                self.best_loss_ = np.inf

    def _fit_lbfgs(self, X, Y, sw, net):
        """solver="lbfgs" (fastbp/_lbfgs.py): L-BFGS-B over all rows from the network's
        weights, with scikit-learn's max_iter, max_fun and tol (gtol) and its warning;
        each iteration's mean cost goes to ``loss_curve_`` as an epoch's would."""
        objective = _lbfgs.Objective(net, X, Y, sw, self.alpha, self.backend)

        def on_iteration(cost):
            self.n_iter_ += 1
            self.loss_curve_.append(cost)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {cost:.8f}")

        with numba_threads(self.threads):
            self.n_iter_, self.loss_, result = _lbfgs.minimize(
                objective, net.params, self.max_iter, self.max_fun, self.tol, on_iteration)
        if not (np.isfinite(net.params).all() and np.isfinite(self.loss_)):
            raise _diverged(f"{type(self).__name__}: L-BFGS-B stopped at a point where the "
                            f"loss or the weights are not finite: {result.message}")
        if result.status != 0:
            warnings.warn(_lbfgs.convergence_message(type(self).__name__, self.n_iter_,
                                                     result, self.max_iter, self.max_fun),
                          ConvergenceWarning)
        return self

    def _loss_grad_lbfgs(self, packed_coef_inter, X, y, sample_weight, *workspaces):
        """The L-BFGS objective (fastbp/_lbfgs.py) and its gradient at parameters packed
        as scikit-learn packs them (every ``coefs_``, then every ``intercepts_``), with
        the network's parameters set to them: the method scikit-learn's own solver calls,
        by its name and signature, so that scikit-learn's test_gradient checks fastbp's
        (``workspaces``, scikit-learn's buffers, are not needed)."""
        net = self._fitted_network("_loss_grad_lbfgs")
        order = _lbfgs.sklearn_order(net)
        x = np.empty(net.n_params)
        x[order] = packed_coef_inter
        value, grad = _lbfgs.Objective(net, X, y, sample_weight, self.alpha,
                                       self.backend)(x)
        return value, grad[order]

    def _prepare_fit(self, X, y, sample_weight, incremental, binarizer):
        """Everything a fit needs before it changes the estimator (see ``_fit``)."""
        settings = params.check(self)
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
        sw = self._sample_weight(sample_weight, X, y_score, incremental)
        rng = check_random_state(self.random_state)
        if first:
            settings["dtype"] = X.dtype
            net = self._new_network(X.shape[1], Y.shape[1], settings, rng, targets)
        else:
            net = self.network_
            self._check_warm_network(net, Y.shape[1], settings)
        lbfgs = self.solver == "lbfgs"  # no Trainer, no early-stopping split (scikit-learn)
        if lbfgs:
            trainer = trainer_options = None
        elif incremental and fitted and getattr(self, "_trainer", None) is not None:
            trainer = self._trainer  # momentum (optimizer state) carries over
            trainer_options = self._trainer_kwargs
        else:
            trainer_options = params.trainer_options(self, int(rng.randint(_SEED_HIGH)))
            trainer = Trainer(net, **trainer_options)

        X_val = y_val = sw_val = None
        if self.early_stopping and not lbfgs:
            X, X_val, Y, y_score, y_val, sw, sw_val = self._split(X, Y, y_score, sw, rng)
        if sw is not None and not sw.any():
            raise ValueError("sample_weight is zero on every training sample left after "
                             "the early-stopping split")
        X, X_val = _dense(X), _dense(X_val)
        targets["_batch"] = params.batch_size(self, X.shape[0])
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
            # None: network_ was fitted with early_stopping or lbfgs, which track no best loss
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

    def fit(self, X: MatrixLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
        return self._fit(X, y, sample_weight, incremental=False)

    fit.__doc__ = FIT_DOC

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
        with numba_threads(self.threads):
            if not sp.issparse(X):
                return net.forward(X, backend=self.backend).astype(dtype, copy=False)
            X = X.tocsr().astype(net.dtype, copy=False)
            out = np.empty((X.shape[0], net.layer_sizes[-1]), dtype)
            for lo in range(0, X.shape[0], _PREDICT_ROWS):
                out[lo:lo + _PREDICT_ROWS] = net.forward(X[lo:lo + _PREDICT_ROWS].toarray(),
                                                         backend=self.backend)
            return out

    @fill(TO_ONNX_DOC)
    def to_onnx(self, path: str | os.PathLike[str] | None, dtype: DTypeLike = "float32",
                options: dict[str, Any] | None = None, target_opset: int | None = None
                ) -> onnx.ModelProto:
        check_is_fitted(self)
        from fastbp import onnx_export  # onnx and skl2onnx load on first use only
        return onnx_export.estimator_to_onnx(self, path, dtype=dtype, options=options,
                                             target_opset=target_opset)
