"""What fastbp's scikit-learn estimators share: parameters, validation, the fit loop over a
Trainer, fitted views, and the parameter and attribute documentation
(``fastbp.estimators`` holds the two public classes).

scikit-learn is optional for fastbp as a whole and required by the estimators only.
"""
import numbers
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, is_classifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError("fastbp.estimators (MLPClassifier, MLPRegressor) needs scikit-learn "
                      ">= 1.6; install it with `pip install scikit-learn`") from exc

from fastbp import _validate, schedules
from fastbp.network import Network
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


class _BaseMLP(BaseEstimator):
    """Shared fit/partial_fit machinery; the subclasses say how targets are encoded."""

    # One signature for both estimators (get_params reads it). A new solver's own
    # parameters (say beta_1, beta_2 for adam) go here and into its _SOLVERS entry.
    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="sgd",
                 alpha=1e-4, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, momentum=0.9,
                 nesterovs_momentum=True, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, backend="loop",
                 dtype="float32", schedule="minibatch"):
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

    # -- hooks for the subclasses -------------------------------------------------------

    def _validate_targets(self, X, y, reset, incremental):
        """(X, Y, y_score): validated inputs, the (n, n_outputs) target matrix the
        network trains on, and y in the form ``_score_arrays`` compares against."""
        raise NotImplementedError

    def _output(self):
        """(output activation, loss) of the network."""
        raise NotImplementedError

    def _score_arrays(self, X, y):
        """Validation score (higher is better) of already validated arrays."""
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
        return dict(hidden=[int(h) for h in hidden],
                    activation=_ACTIVATIONS[self.activation],
                    dtype=_validate.as_dtype(self.dtype))

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
                    lr_schedule=_LEARNING_RATES[self.learning_rate](self),
                    **_SOLVERS[self.solver](self))

    # -- training -----------------------------------------------------------------------

    def _fit(self, X, y, incremental):
        settings = self._check_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        fitted = hasattr(self, "network_")
        first = not fitted or not (self.warm_start or incremental)
        X, Y, y_score = self._validate_targets(X, y, reset=first, incremental=incremental)
        rng = check_random_state(self.random_state)
        if first:
            net = self._new_network(X.shape[1], Y.shape[1], settings, rng)
        else:
            net = self.network_
            self._check_warm_network(net, Y.shape[1], settings)
        if incremental and fitted:
            trainer = self._trainer  # momentum (optimizer state) carries over
            trainer_options = self._trainer_kwargs
        else:
            trainer_options = self._trainer_options(int(rng.randint(_SEED_HIGH)))
            trainer = Trainer(net, **trainer_options)

        if self.early_stopping:
            # Stratify single-output classification, as scikit-learn does.
            stratify = y_score if is_classifier(self) and y_score.ndim == 1 else None
            X, X_val, Y, _, _, y_val = train_test_split(
                X, Y, y_score, test_size=self.validation_fraction, random_state=rng,
                stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
        trainer.batch_size = self._batch_size(X.shape[0])

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
        best_params = net.params.copy() if self.early_stopping else None

        def after_epoch(epoch, history):
            nonlocal best_params
            self.n_iter_ += 1
            self.loss_curve_.append(history.loss[-1])
            self.loss_ = history.loss[-1]
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            if self.early_stopping:
                score = self._score_arrays(X_val, y_val)
                self.validation_scores_.append(score)
                if self.verbose:
                    print(f"Validation score: {score:f}")
                improved = score >= self.best_validation_score_ + self.tol
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_params = net.params.copy()
            else:
                improved = self.loss_ <= self.best_loss_ - self.tol
                self.best_loss_ = min(self.best_loss_, self.loss_)
            self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
            return self._no_improvement_count > self.n_iter_no_change

        epochs = 1 if incremental else self.max_iter
        try:
            history = trainer.fit(X, Y, epochs=epochs, callback=after_epoch)
        except FloatingPointError as exc:
            raise FloatingPointError(f"{type(self).__name__}: {exc} The estimator was "
                                     "trained with learning_rate_init="
                                     f"{self.learning_rate_init}.") from exc
        if best_params is not None:
            net.params[...] = best_params
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

    def _new_network(self, n_in, n_out, settings, rng):
        out_activation, loss = self._output()
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
        if net.dtype != settings["dtype"] or (settings["hidden"]
                                              and net.activations[0] != settings["activation"]):
            raise ValueError("dtype and activation cannot change between warm-started or "
                             "partial fits; set warm_start=False to fit a new network.")

    # -- prediction ---------------------------------------------------------------------

    def __sklearn_is_fitted__(self):
        return hasattr(self, "network_")

    def _forward(self, X):
        """Network outputs for X, validated against the fit, as float64 (n, n_outputs)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.network_.dtype)
        return self.network_.forward(X, backend=self.backend).astype(np.float64)

    # -- fitted views -------------------------------------------------------------------

    @property
    def coefs_(self):
        """List of weight matrices, ``coefs_[i]`` of shape (n_in, n_out): transposed
        views of ``network_.weights`` (writes go into the network)."""
        return [W.T for W in self.network_.weights]

    @property
    def intercepts_(self):
        """List of bias vectors, ``intercepts_[i]`` of shape (n_out,): views of
        ``network_.biases``."""
        return list(self.network_.biases)


_PARAMETERS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer; ``()`` gives a network without hidden layers.
    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
        Activation of the hidden layers (``"logistic"`` is fastbp's ``"sigmoid"``,
        which is accepted too).
    solver : {"sgd", "adam", "rprop"}, default="sgd"
        The optimizer of :class:`fastbp.Trainer`: gradient descent with classical or
        Nesterov momentum, Adam, or RPROP (iRprop-; ``learning_rate_init`` is its initial
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
        Step size, constant throughout training. The default is scikit-learn's; with
        standardized inputs and targets plain SGD often does better with 0.01 to 0.1
        (larger steps can diverge on unscaled targets: ``FloatingPointError``).
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Per-epoch schedule of the step size (:mod:`fastbp.schedules`): ``"invscaling"``
        is ``learning_rate_init / (1 + epoch) ** power_t`` (scikit-learn counts samples
        instead of epochs); ``"adaptive"`` divides it by 5 whenever two epochs in a row
        do not improve the training loss by a relative ``tol``.
    power_t : float, default=0.5
        Exponent of ``"invscaling"``.
    momentum : float, default=0.9
        Momentum in [0, 1): ``v <- momentum * v + g``, ``w <- w - learning_rate_init * v``
        (for a constant step the same iterates as scikit-learn's formulation).
    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum (ignored when ``momentum == 0``).
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
    dtype : {"float32", "float64"}, default="float32"
        Precision of the network's parameters and arithmetic; inputs are converted to it.
        Predictions are returned as float64 whatever the precision.
    schedule : {"minibatch", "online", "fullbatch"}, default="minibatch"
        Update schedule: one update per ``batch_size`` samples, per sample, or per epoch.
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
        view of ``network_.weights[i]``, which fastbp stores as (n_out, n_in).
    intercepts_ : list of ndarray
        ``intercepts_[i]`` has shape (n_out,): a view of ``network_.biases[i]``.
"""

_NOT_SUPPORTED_DOC = """
    Unlike scikit-learn's MLP estimators these support no ``sample_weight``, no sparse
    input and no ``"lbfgs"`` solver (they add ``"rprop"``); ``alpha`` is not divided by
    the batch size and ``"invscaling"`` counts epochs, not samples; the weights start from
    Glorot-uniform (He-normal for relu) draws and the biases at zero.
"""


