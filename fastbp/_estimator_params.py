"""The parameters of fastbp's scikit-learn estimators: their checks, and what they mean
for the :class:`fastbp.Trainer` (or the L-BFGS solver) that fits the network.

scikit-learn validates parameters in ``fit``, never in ``__init__`` or ``set_params``:
:func:`check` runs at the start of every fit and partial_fit, before anything changes.
"""
import numbers
import warnings

import numpy as np

from fastbp import _validate, schedules
from fastbp.trainer import SCHEDULES

# scikit-learn's activation names -> fastbp's ("sigmoid" is accepted as well).
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "sigmoid": "sigmoid",
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
# backend); None for "lbfgs", which fits without a Trainer (fastbp/_lbfgs.py). A new
# Trainer optimizer is one entry here, plus its parameters in BaseMLP.__init__.
SOLVERS = {"sgd": _sgd_options, "adam": _adam_options, "rprop": _rprop_options,
           "lbfgs": None}

# scikit-learn's learning_rate names -> fastbp.schedules, per epoch (scikit-learn's
# "invscaling" counts samples; "adaptive" divides by 5 after 2 epochs without a gain).
LEARNING_RATES = {
    "constant": lambda est: None,
    "invscaling": lambda est: schedules.InverseScaling(decay=1.0, power=est.power_t),
    "adaptive": lambda est: schedules.ReduceOnPlateau(factor=0.2, patience=1,
                                                      threshold=est.tol),
}


def check(est):
    """Validate the constructor parameters of ``est``; return the derived settings: the
    hidden layer sizes, fastbp's name of the hidden activation and the dtype (or None)."""
    _validate.choice("solver", est.solver, SOLVERS)
    _validate.choice("learning_rate", est.learning_rate, LEARNING_RATES)
    _validate.real("power_t", est.power_t, 0.0)
    for name in ("beta_1", "beta_2"):
        _validate.real(name, getattr(est, name), 0.0, True, high=1.0)
    _validate.real("epsilon", est.epsilon, 0.0, False)
    _validate.choice("activation", est.activation, ACTIVATIONS)
    _validate.choice("schedule", est.schedule, SCHEDULES)
    hidden = est.hidden_layer_sizes
    hidden = [hidden] if isinstance(hidden, numbers.Integral) else list(hidden)
    if any(isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1
           for h in hidden):
        raise ValueError("hidden_layer_sizes must be positive integers; got "
                         f"{est.hidden_layer_sizes!r}")
    if not (isinstance(est.batch_size, str) and est.batch_size == "auto"):
        if (isinstance(est.batch_size, bool)
                or not isinstance(est.batch_size, numbers.Integral)
                or est.batch_size < 1):
            raise ValueError(f"batch_size must be 'auto' or a positive integer; got "
                             f"{est.batch_size!r}")
    _validate.real("alpha", est.alpha, 0.0)
    _validate.real("learning_rate_init", est.learning_rate_init, 0.0, False)
    _validate.real("momentum", est.momentum, 0.0, True, high=1.0)
    _validate.positive_int("max_iter", est.max_iter)
    _validate.positive_int("max_fun", est.max_fun)
    _validate.real("tol", est.tol, 0.0)
    if not (est.n_iter_no_change == np.inf
            or (isinstance(est.n_iter_no_change, numbers.Integral)
                and not isinstance(est.n_iter_no_change, bool)
                and est.n_iter_no_change >= 1)):
        raise ValueError("n_iter_no_change must be a positive integer or np.inf; got "
                         f"{est.n_iter_no_change!r}")
    if est.early_stopping:
        _validate.real("validation_fraction", est.validation_fraction, 0.0, False,
                       high=1.0)
    _validate.threads(est.threads)
    return dict(hidden=[int(h) for h in hidden], activation=ACTIVATIONS[est.activation],
                dtype=None if est.dtype is None else _validate.as_dtype(est.dtype))


def batch_size(est, n_samples):
    """min(200, n) for 'auto', else batch_size clipped to n (with a warning)."""
    if isinstance(est.batch_size, str):
        return min(200, n_samples)
    if est.batch_size > n_samples and est.schedule == "minibatch":
        warnings.warn(f"batch_size={est.batch_size} is larger than the {n_samples} "
                      "training samples; it is clipped to their number", UserWarning)
    return int(min(est.batch_size, n_samples))


def trainer_options(est, seed):
    """Keyword arguments of the fastbp.Trainer that the parameters of ``est`` ask for
    (a stochastic solver's; the batch size is set per call)."""
    return dict(schedule=est.schedule, batch_size=1,
                learning_rate=est.learning_rate_init, l2=est.alpha,
                shuffle=bool(est.shuffle), seed=seed, backend=est.backend,
                threads=est.threads, lr_schedule=LEARNING_RATES[est.learning_rate](est),
                **SOLVERS[est.solver](est))
