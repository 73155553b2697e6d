"""scikit-learn estimators: the estimator checks, then fastbp-specific behaviour."""
import copy
import pathlib
import pickle
import re
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
import scipy.sparse as sp  # noqa: E402  (a dependency of scikit-learn)

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastbp import _estimator_base  # noqa: E402
from fastbp.datasets import load_digits  # noqa: E402
from fastbp.estimators import MLPClassifier, MLPRegressor  # noqa: E402

# Estimator-check instances, each with the reason it cannot pass scikit-learn's
# sample-weight equivalence checks, or None. Those checks fit 15 rows with integer weights
# and the same rows repeated (about 30): the two fits agree within their rtol=1e-7 only
# when each epoch is one full batch (batch_size="auto" is min(200, n): full batch here)
# in float64 (dtype=None follows the checks' float64 data). Small networks, max_iter=50
# and a loose tol keep the whole set to seconds. The regressor checks fit unscaled
# multi-output targets (make_regression, values in the hundreds): plain SGD needs a
# small step there.
_WEIGHTS_AS_REPEATS = ("check_sample_weight_equivalence_on_dense_data",
                       "check_sample_weight_equivalence_on_sparse_data")
CHECKED = [
    (MLPClassifier(hidden_layer_sizes=(16,), max_iter=50, tol=1e-3, learning_rate_init=0.05),
     None),
    (MLPClassifier(hidden_layer_sizes=(8, 8), activation="tanh", max_iter=50, tol=1e-3,
                   solver="sgd", learning_rate_init=0.02, dtype="float64", schedule="online"),
     "online updates: a weight only tells 0 from not 0, where a repeated row updates twice"),
    (MLPRegressor(hidden_layer_sizes=(16,), max_iter=50, tol=1e-3, solver="sgd",
                  learning_rate_init=1e-3, batch_size=16, dtype="float32"),
     "mini-batches of 16 (repeated rows land in different batches), and float32 (the "
     "summation order alone moves predictions by more than rtol=1e-7)"),
    (MLPRegressor(hidden_layer_sizes=(16,), activation="tanh", max_iter=50, tol=1e-3,
                  solver="sgd", learning_rate_init=1e-2, schedule="fullbatch",
                  backend="vectorized"),
     None),
    (MLPRegressor(hidden_layer_sizes=(16,), max_iter=50, tol=1e-3, learning_rate_init=1e-2),
     None),
    (MLPClassifier(hidden_layer_sizes=(8,), activation="tanh", solver="lbfgs", max_iter=50,
                   tol=1e-3), None),
]
_WHY_NOT = {id(est): why for est, why in CHECKED}


def _expected_failed_checks(est):
    why = _WHY_NOT[id(est)]
    return {} if why is None else dict.fromkeys(_WEIGHTS_AS_REPEATS, why)


@parametrize_with_checks([est for est, _ in CHECKED],
                         expected_failed_checks=_expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    if (getattr(check, "func", check).__name__ == "check_class_weight_classifiers"
            and estimator.schedule == "online"):
        pytest.skip("online updates follow each sample's gradient whatever its weight (a "
                    "weight only tells 0 from not 0), so class weights cannot act")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", "batch_size=.*clipped", UserWarning)
        check(estimator)


def test_sample_weight_checks_run():
    """check_estimator yields its sample-weight checks only for a fit that takes
    sample_weight (the sparse one only with the sparse input tag): they must be there."""
    def name(param):
        check = param[1] if isinstance(param, tuple) else param.values[1]
        return getattr(check, "func", check).__name__
    for est in (MLPClassifier(), MLPRegressor()):
        names = {name(p) for p in parametrize_with_checks([est]).args[1]}
        assert {*_WEIGHTS_AS_REPEATS, "check_sample_weights_shape",
                "check_sample_weights_not_overwritten"} <= names, names

def test_import_without_sklearn_names_the_install():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import fastbp\n"
            "try:\n"
            "    import fastbp.estimators\n"
            "except ImportError as exc:\n"
            "    assert 'pip install scikit-learn' in str(exc), exc\n"
            "else:\n"
            "    raise SystemExit('no ImportError')\n"
            "if 'MLPClassifier' in dir(fastbp):  # exported lazily from fastbp\n"
            "    try:\n"
            "        fastbp.MLPClassifier\n"
            "    except ImportError as exc:\n"
            "        assert 'pip install scikit-learn' in str(exc), exc\n"
            "    else:\n"
            "        raise SystemExit('no ImportError from fastbp.MLPClassifier')\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_exported_from_fastbp():
    import fastbp
    assert "MLPClassifier" in dir(fastbp) and "MLPRegressor" in dir(fastbp)
    assert fastbp.MLPClassifier is MLPClassifier and fastbp.MLPRegressor is MLPRegressor


# -- classification -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    X, y = load_digits()
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def test_digits_accuracy(digits):
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier(hidden_layer_sizes=(64,), activation="tanh", solver="sgd",
                        batch_size=32, learning_rate_init=0.1, max_iter=100, random_state=0)
    clf.fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.95
    assert clf.n_iter_ < 100  # stopped on tol, before max_iter
    assert clf.out_activation_ == "softmax" and clf.network_.loss_name == "cross_entropy"
    assert clf.loss_curve_[-1] < clf.loss_curve_[0] and clf.best_loss_ == min(clf.loss_curve_)


@pytest.mark.parametrize("solver,extra", [
    ("adam", dict(learning_rate_init=0.003, learning_rate="invscaling", power_t=0.25)),
    ("rprop", dict(schedule="fullbatch", learning_rate_init=0.01, learning_rate="adaptive")),
])
def test_solvers_and_learning_rates(digits, solver, extra):
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier(hidden_layer_sizes=(64,), activation="tanh", solver=solver,
                        max_iter=60, random_state=0, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.9
    assert clf._trainer.optimizer == solver


def test_pipeline_grid_search(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=0.05, max_iter=20,
        random_state=0))
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2],
                                 "mlpclassifier__schedule": ["minibatch", "fullbatch"]},
                          cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X_train[:600], y_train[:600])
    assert set(search.best_params_) == {"mlpclassifier__alpha", "mlpclassifier__schedule"}
    assert search.score(X_test, y_test) > 0.8


def test_string_labels_binary_and_multiclass():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    names = np.array(["cat", "dog", "emu"])
    y3 = names[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
    clf = MLPClassifier(hidden_layer_sizes=(10,), solver="sgd", learning_rate_init=0.1,
                        max_iter=300, random_state=0).fit(X, y3)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert clf.network_.layer_sizes == [3, 10, 3] and clf.out_activation_ == "softmax"
    assert set(clf.predict(X)) <= set(names) and clf.score(X, y3) > 0.9
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))

    y2 = np.where(X[:, 0] > 0, "yes", "no")
    clf2 = MLPClassifier(hidden_layer_sizes=(10,), solver="sgd", learning_rate_init=0.1,
                         max_iter=300, random_state=0).fit(X, y2)
    # Binary: one sigmoid unit for P(classes_[1]); predict_proba gives [1 - p, p].
    assert clf2.network_.layer_sizes == [3, 10, 1] and clf2.out_activation_ == "logistic"
    p = clf2.network_.forward(X)[:, 0]
    np.testing.assert_array_equal(clf2.predict_proba(X), np.column_stack([1 - p, p]))
    np.testing.assert_array_equal(clf2.predict(X), clf2.classes_[(p > 0.5).astype(int)])
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(clf2.predict_log_proba(X), np.log(clf2.predict_proba(X)))
    assert clf2.score(X, y2) > 0.95


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_multilabel():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] < -0.5]).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=0.1,
                        max_iter=300, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.network_.layer_sizes[-1] == 3
    assert clf.predict(X).shape == Y.shape and clf.predict_proba(X).shape == Y.shape
    assert (clf.predict(X) == Y).mean() > 0.9


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_one_class_predicts_it():
    """As scikit-learn: a y with one class trains one sigmoid unit on an all-zero target
    and predicts that class; predict_proba is one column of ones (one per class)."""
    X = np.random.default_rng(0).normal(size=(12, 3))
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, ["a"] * 12)
    assert list(clf.classes_) == ["a"] and clf.network_.layer_sizes == [3, 4, 1]
    assert list(clf.predict(X[:3])) == ["a"] * 3 and clf.score(X, ["a"] * 12) == 1
    np.testing.assert_array_equal(clf.predict_proba(X[:3]), np.ones((3, 1)))
    clf = MLPClassifier(max_iter=5).partial_fit(X, [7] * 12, classes=[7])
    assert list(clf.predict(X[:2])) == [7, 7]


# -- regression -----------------------------------------------------------------------------

def _smooth(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    return X, np.column_stack([np.sin(2 * X[:, 0]) * X[:, 1], np.cos(X[:, 0] + X[:, 1])])


def test_regressor_smooth_problem():
    X, Y = _smooth()
    reg = MLPRegressor(hidden_layer_sizes=(32,), activation="tanh", solver="sgd",
                       batch_size=16, learning_rate_init=0.05, max_iter=300, tol=1e-5,
                       random_state=0)
    reg.fit(X[:500], Y[:500, 0])
    assert reg.predict(X[500:]).shape == (100,)  # 1-D y predicts 1-D
    assert reg.score(X[500:], Y[500:, 0]) > 0.95
    assert reg.out_activation_ == "identity" and reg.network_.loss_name == "mse"
    multi = clone(reg).fit(X[:500], Y[:500])
    assert multi.predict(X[500:]).shape == (100, 2) and multi.n_outputs_ == 2
    assert multi.score(X[500:], Y[500:]) > 0.9


def test_regressor_divergence_names_the_step():
    """Without early stopping a diverging fit raises what scikit-learn raises
    (ValueError) and what fastbp documents (FloatingPointError): one exception."""
    X, y = _smooth(50)[0], 1e4 * _smooth(50)[1][:, 0]
    reg = MLPRegressor(solver="sgd", learning_rate_init=10.0, max_iter=5, random_state=0)
    with pytest.raises(FloatingPointError, match="learning_rate_init=10") as info:
        reg.fit(X, y)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("Solver produced non-finite parameter weights.")
    assert np.isfinite(reg.network_.params).all()  # the last finite weights


def test_divergence_with_early_stopping_keeps_the_best_epoch(monkeypatch):
    """As scikit-learn: the diverged epoch scores NaN, the fit finishes (with a
    ConvergenceWarning) and keeps the weights of the best validation score."""
    X, Y = _smooth(200)
    y = 1e3 * Y[:, 0]
    original = MLPRegressor._after_epoch

    def after_epoch(self, *args):  # three sound epochs, then a step that must blow up
        stop = original(self, *args)
        if self.n_iter_ == 3:
            self._trainer.learning_rate = 1e4
        return stop
    monkeypatch.setattr(MLPRegressor, "_after_epoch", after_epoch)
    reg = MLPRegressor(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=1e-4,
                       batch_size=10, early_stopping=True, max_iter=30, random_state=0)
    with pytest.warns(ConvergenceWarning, match="weights of the best validation"):
        reg.fit(X, y)
    assert reg.n_iter_ == 4
    assert np.isnan(reg.validation_scores_[-1]) and isinstance(reg.validation_scores_[-1], float)
    assert len(reg.validation_scores_) == len(reg.loss_curve_) == reg.n_iter_
    assert np.isfinite(reg.validation_scores_[:-1]).all() and np.isnan(reg.loss_curve_[-1])
    rng = np.random.RandomState(0)
    rng.randint(2 ** 31 - 1, size=2)
    _, X_val, _, y_val = train_test_split(X, y, test_size=0.1, random_state=rng)
    assert reg.score(X_val, y_val) == pytest.approx(reg.best_validation_score_, rel=1e-12)


# -- the estimator interface ----------------------------------------------------------------

def test_params_clone_round_trip():
    clf = MLPClassifier(hidden_layer_sizes=(7, 5), activation="logistic", alpha=0.01,
                        schedule="online", dtype="float64", backend="vectorized",
                        random_state=3)
    params = clf.get_params()
    assert params["hidden_layer_sizes"] == (7, 5) and params["schedule"] == "online"
    assert set(params) == set(MLPRegressor().get_params()) | {"class_weight"}
    twin = clone(clf)
    assert twin is not clf and twin.get_params() == params
    assert clf.set_params(alpha=0.5, batch_size=3) is clf
    assert clf.alpha == 0.5 and clf.batch_size == 3 and twin.alpha == 0.01
    X, y = np.random.default_rng(0).normal(size=(30, 4)), np.arange(30) % 3
    clf.set_params(max_iter=3)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clone(clf).get_params() == clf.get_params()
    assert not hasattr(clone(clf), "network_")
    # The settings reach fastbp's Network and Trainer.
    assert clf.network_.layer_sizes == [4, 7, 5, 3]
    assert clf.network_.activations == ["sigmoid", "sigmoid", "softmax"]
    assert clf.network_.dtype == np.float64 and clf._trainer.schedule == "online"
    assert clf._trainer.l2 == 0.5 and clf._trainer.backend == "vectorized"


def test_predictions_equal_network_forward_and_coefs_are_views():
    X, Y = _smooth(80)
    reg = MLPRegressor(hidden_layer_sizes=(6, 5), max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        reg.fit(X, Y)
    np.testing.assert_array_equal(reg.predict(X), reg.network_.forward(X))
    assert [c.shape for c in reg.coefs_] == [(2, 6), (6, 5), (5, 2)]
    assert [b.shape for b in reg.intercepts_] == [(6,), (5,), (2,)]
    for coef, W, b, bias in zip(reg.coefs_, reg.network_.weights, reg.intercepts_,
                                reg.network_.biases):
        np.testing.assert_array_equal(coef, W.T)
        assert np.shares_memory(coef, reg.network_.params)
        np.testing.assert_array_equal(b, bias)
        assert np.shares_memory(b, reg.network_.params)
    reg.coefs_[0][...] = 0  # a write through the view changes the network
    assert not reg.network_.weights[0].any()
    with pytest.raises(NotFittedError):
        MLPRegressor().predict(X)


def test_coefs_and_intercepts_are_assignable():
    """As scikit-learn's lists: items and whole lists can be assigned; fastbp copies
    them into the network, after checking every shape."""
    X, Y = _smooth(40)
    reg = MLPRegressor(hidden_layer_sizes=(3,), activation="identity", max_iter=2,
                       random_state=0)
    with pytest.warns(ConvergenceWarning):
        reg.fit(X, Y)
    W0 = np.arange(6.0).reshape(2, 3)
    reg.coefs_[0] = W0
    np.testing.assert_array_equal(reg.network_.weights[0], W0.T)
    reg.intercepts_[-1] = [1.0, 2.0]
    np.testing.assert_array_equal(reg.network_.biases[1], [1, 2])
    reg.coefs_ = [np.ones((2, 3)), np.full((3, 2), 0.5)]
    reg.intercepts_ = [np.zeros(3), np.zeros(2)]
    expected = np.repeat(1.5 * X[:4].sum(axis=1, keepdims=True), 2, axis=1)
    np.testing.assert_allclose(reg.predict(X[:4]), expected, rtol=1e-12)
    before = reg.network_.params.copy()
    with pytest.raises(ValueError, match=r"coefs_\[1\] must have shape \(3, 2\); got \(2, 3\)"):
        reg.coefs_ = [np.zeros((2, 3)), np.zeros((2, 3))]
    with pytest.raises(ValueError, match="needs 2 arrays"):
        reg.intercepts_ = [np.zeros(3)]
    with pytest.raises(ValueError, match=r"intercepts_\[0\] must have shape"):
        reg.intercepts_[0] = np.zeros(4)
    with pytest.raises(TypeError, match="length"):
        reg.coefs_.append(np.zeros((3, 2)))
    np.testing.assert_array_equal(reg.network_.params, before)  # nothing changed
    for copied in (pickle.loads(pickle.dumps(reg.coefs_)), copy.deepcopy(reg.coefs_)):
        assert type(copied) is list and not np.shares_memory(copied[0], reg.network_.params)
        np.testing.assert_array_equal(copied[1], reg.coefs_[1])
    with pytest.raises(NotFittedError):
        MLPRegressor().coefs_ = [np.zeros((2, 3))]
    assert not hasattr(MLPRegressor(), "coefs_")


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_dtype_follows_the_input(Estimator):
    """As scikit-learn: float32 X trains and predicts in float32, other X in float64;
    dtype= overrides; a network that goes on training keeps its dtype."""
    X, y = load_digits()
    X, y = X[:120], y[:120]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for X_in, want in [(X, np.float32), (X.astype(np.float64), np.float64),
                           ((X * 16).astype(np.int64), np.float64)]:
            est = Estimator(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X_in, y)
            assert est.network_.dtype == want and est.coefs_[0].dtype == want
            assert est.intercepts_[0].dtype == want
            out = est.predict_proba(X_in) if hasattr(est, "predict_proba") else est.predict(X_in)
            assert out.dtype == want
        est = Estimator(hidden_layer_sizes=(5,), max_iter=3, dtype="float32",
                        random_state=0).fit(X.astype(np.float64), y)
        assert est.network_.dtype == np.float32
        # Outputs as NumPy promotes X's dtype and the network's (scikit-learn's products).
        predict = getattr(est, "predict_proba", est.predict)
        assert predict(X.astype(np.float64)).dtype == np.float64
        assert predict(X).dtype == np.float32
        est.set_params(dtype=None, warm_start=True).fit(X.astype(np.float64), y)
        est.partial_fit(X.astype(np.float64), y)
        assert est.network_.dtype == np.float32

def test_partial_fit_continues_with_momentum():
    """k partial_fit calls run the same updates as fit with max_iter=k: the Trainer, and
    with it the momentum and the shuffling generator, is kept between calls."""
    X, y = load_digits()
    X, y = X[:300], y[:300]
    kwargs = dict(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=0.05,
                  batch_size=32, random_state=0, n_iter_no_change=np.inf)
    online = MLPClassifier(**kwargs)
    with pytest.raises(ValueError, match="classes must be passed"):
        online.partial_fit(X, y)
    online.partial_fit(X, y, classes=np.arange(10))
    trainer = online._trainer
    assert online.n_iter_ == 1 and np.abs(trainer.velocity).max() > 0
    for _ in range(3):
        online.partial_fit(X, y)
    assert online._trainer is trainer and len(online.loss_curve_) == 4
    with pytest.warns(ConvergenceWarning):
        batch = MLPClassifier(max_iter=4, **kwargs).fit(X, y)
    np.testing.assert_array_equal(online.network_.params, batch.network_.params)
    assert online.loss_curve_ == batch.loss_curve_
    # A batch may hold a subset of the classes; unknown classes are refused.
    online.partial_fit(X[y < 5], y[y < 5])
    with pytest.raises(ValueError, match="classes"):
        online.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="3 features"):
        online.partial_fit(X[:, :3], y)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X, y)


def test_pickle_keeps_the_trainer():
    X, y = load_digits()
    X, y = X[:200], y[:200]
    clf = MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=0.05,
                        random_state=0)
    clf.partial_fit(X, y, classes=np.arange(10))
    twin = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(twin.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(twin._trainer.velocity, clf._trainer.velocity)
    assert twin._trainer.net is twin.network_
    clf.partial_fit(X, y)
    twin.partial_fit(X, y)
    np.testing.assert_array_equal(twin.network_.params, clf.network_.params)


def test_stopping_rules_and_convergence_warning():
    X, Y = _smooth(200)
    y = Y[:, 0]
    with pytest.warns(ConvergenceWarning, match=r"maximum iterations \(5\)"):
        reg = MLPRegressor(max_iter=5, random_state=0).fit(X, y)
    assert reg.n_iter_ == 5 and len(reg.loss_curve_) == 5
    assert reg.validation_scores_ is None and reg.best_validation_score_ is None
    # A huge tol: only the first epoch improves (on an infinite best loss); training
    # stops once more than n_iter_no_change epochs in a row did not (scikit-learn's
    # rule): after 1 + (3 + 1) epochs, without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        reg = MLPRegressor(tol=1e3, n_iter_no_change=3, random_state=0).fit(X, y)
    assert reg.n_iter_ == 5
    # Early stopping scores a held-out share and keeps the best epoch's weights.
    reg = MLPRegressor(hidden_layer_sizes=(16,), activation="tanh", early_stopping=True,
                       solver="sgd", learning_rate_init=0.05, n_iter_no_change=5,
                       max_iter=200, random_state=0).fit(X, y)
    assert len(reg.validation_scores_) == reg.n_iter_ < 200
    assert reg.best_validation_score_ == max(reg.validation_scores_) and reg.best_loss_ is None
    assert int(np.argmax(reg.validation_scores_)) < reg.n_iter_ - 1
    # The held-out share, drawn as fit draws it (after the network's and the Trainer's
    # seeds): the final weights are the best epoch's.
    rng = np.random.RandomState(0)
    rng.randint(2 ** 31 - 1, size=2)
    _, X_val, _, y_val = train_test_split(X, y, test_size=0.1, random_state=rng)
    assert reg.score(X_val, y_val) == pytest.approx(reg.best_validation_score_, rel=1e-12)


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_warm_start_continues_training(solver):
    """lbfgs too goes on from the fitted weights; it ignores early_stopping (as
    scikit-learn), and another solver goes on from its fit with a Trainer of its own."""
    X, Y = _smooth(200)
    reg = MLPRegressor(hidden_layer_sizes=(8,), solver=solver, learning_rate_init=0.02,
                       max_iter=10, warm_start=True, early_stopping=solver == "lbfgs",
                       random_state=0)
    with pytest.warns(ConvergenceWarning):
        reg.fit(X, Y[:, 0])
    network, first = reg.network_, reg.network_.params.copy()
    with pytest.warns(ConvergenceWarning):
        reg.fit(X, Y[:, 0])
    assert reg.network_ is network and not np.array_equal(first, network.params)
    assert len(reg.loss_curve_) == 20 and reg.n_iter_ == 10
    if solver == "lbfgs":
        assert reg.validation_scores_ is None and reg.loss_curve_[19] < reg.loss_curve_[9]
        reg.set_params(solver="sgd", early_stopping=False).partial_fit(X, Y[:, 0])
        assert reg._trainer is not None and reg.n_iter_ == 1
    reg.set_params(hidden_layer_sizes=(9,))
    with pytest.raises(ValueError, match="warm_start=False"):
        reg.fit(X, Y[:, 0])


@pytest.mark.parametrize("params,match", [
    (dict(solver="newton"), r"solver must be one of \['adam', 'lbfgs', 'rprop', 'sgd'\]"),
    (dict(solver="lbfgs", max_fun=0), "max_fun must be a positive integer"),
    (dict(learning_rate="optimal"), "learning_rate must be one of"),
    (dict(beta_1=1.0), "beta_1 must be a finite number"),
    (dict(activation="softplus"), "activation must be one of"),
    (dict(schedule="batch"), "schedule must be one of"),
    (dict(hidden_layer_sizes=(4, 0)), "hidden_layer_sizes"),
    (dict(batch_size=0), "batch_size"),
    (dict(learning_rate_init=0.0), "learning_rate_init"),
    (dict(momentum=1.0), "momentum"),
    (dict(dtype="float16"), "dtype"),
    (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(threads=0), "threads must be a positive integer"),
    (dict(early_stopping=True, validation_fraction=1.0), "validation_fraction"),
])
def test_bad_parameters_fail_in_fit(params, match):
    clf = MLPClassifier(**params)  # never in __init__ or set_params
    with pytest.raises(ValueError, match=match):
        clf.fit(np.eye(4), [0, 1, 0, 1])
    assert not hasattr(clf, "network_")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_batch_size_auto_and_alpha():
    X, y = np.random.default_rng(0).normal(size=(250, 3)), np.arange(250) % 2
    clf = MLPClassifier(max_iter=1, alpha=0.25).fit(X, y)
    assert clf._trainer.batch_size == 200 and clf._trainer.l2 == 0.25
    clf.fit(X[:50], y[:50])
    assert clf._trainer.batch_size == 50
    with pytest.warns(UserWarning, match="clipped"):
        clf.set_params(batch_size=80).fit(X[:50], y[:50])
    assert clf._trainer.batch_size == 50


def test_early_stopping_classifier_and_verbose(capsys):
    X, y = load_digits()
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                       "eight", "nine"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=0.05,
                        batch_size=32, early_stopping=True, validation_fraction=0.2,
                        n_iter_no_change=3, verbose=True,
                        random_state=0).fit(X[:800], labels[:800])
    assert clf.n_iter_ < 200 and len(clf.validation_scores_) == clf.n_iter_
    assert 0.85 < clf.best_validation_score_ <= 1 and clf.score(X[800:], labels[800:]) > 0.85
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Validation score: " in out
    assert "did not improve more than tol" in out


# -- sparse input ---------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("to_sparse", [sp.csr_matrix, sp.csc_array])
def test_sparse_input_equals_dense(to_sparse, monkeypatch):
    X, y = load_digits()
    X, y = X[:150], y[:150]
    kwargs = dict(hidden_layer_sizes=(8,), max_iter=4, early_stopping=True, random_state=0)
    dense = MLPClassifier(**kwargs).fit(X, y)
    sparse = MLPClassifier(**kwargs).fit(to_sparse(X), y)
    np.testing.assert_array_equal(sparse.network_.params, dense.network_.params)
    assert sparse.validation_scores_ == dense.validation_scores_
    np.testing.assert_array_equal(sparse.predict_proba(to_sparse(X)), dense.predict_proba(X))
    monkeypatch.setattr(_estimator_base, "_PREDICT_ROWS", 7)  # predict in many chunks
    # (the kernels may round a row differently in a batch of another size)
    np.testing.assert_allclose(sparse.predict_proba(to_sparse(X)), dense.predict_proba(X),
                               rtol=1e-5)
    np.testing.assert_array_equal(sparse.predict(to_sparse(X)), dense.predict(X))
    sparse.set_params(early_stopping=False).partial_fit(to_sparse(X), y, np.ones(150))
    dense.set_params(early_stopping=False).partial_fit(X, y, np.ones(150))
    np.testing.assert_array_equal(sparse.network_.params, dense.network_.params)
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    np.testing.assert_array_equal(reg.fit(to_sparse(X), y).network_.params,
                                  clone(reg).fit(X, y).network_.params)
    assert reg.predict(to_sparse(X[:9])).shape == (9,)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sparse_memory_is_one_dense_copy_in_fit_and_chunks_in_predict(monkeypatch):
    """fit densifies a sparse X once, in the network's dtype (no second copy for a
    dtype conversion); predict densifies _PREDICT_ROWS rows at a time."""
    n, d = 6000, 400
    X = sp.random(n, d, density=0.01, format="csr", random_state=0, dtype=np.float64)
    y = np.arange(n) % 2
    dense_bytes = n * d * 4  # the float32 network's dense copy
    clf = MLPClassifier(hidden_layer_sizes=(2,), max_iter=1, dtype="float32", random_state=0)
    clf.fit(X[:50], y[:50])  # compile (or load) the training and
    clf.predict_proba(X[:5])  # prediction kernels outside the measurement
    tracemalloc.start()
    try:
        clf.fit(X, y)
        fit_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        monkeypatch.setattr(_estimator_base, "_PREDICT_ROWS", 500)
        clf.predict_proba(X)
        predict_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert dense_bytes <= fit_peak < 1.3 * dense_bytes, fit_peak / dense_bytes
    # A chunk is 500 of 6000 rows (8%); with the sparse float32 copy, the chunk's dense
    # copy and what Network.forward allocates for its checks and layers the peak is about
    # a quarter of one dense copy of X, where densifying X whole would take 1.0 or more.
    assert predict_peak < 0.35 * dense_bytes, predict_peak / dense_bytes


# -- sample weights -------------------------------------------------------------------------

@pytest.mark.parametrize("Estimator,extra", [(MLPClassifier, dict(schedule="minibatch")),
                                             (MLPRegressor, dict(schedule="fullbatch")),
                                             (MLPClassifier, dict(solver="lbfgs"))])
def test_integer_weights_equal_repeated_rows_in_full_batch(Estimator, extra):
    """With one batch per epoch (or lbfgs, on all rows at once) and float64, weight k
    equals the row repeated k times (0: left out): the weighted mean gradient is the
    repeated rows' mean."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int) if Estimator is MLPClassifier else X[:, 0] * X[:, 1]
    sw = rng.integers(0, 4, 40)
    kwargs = dict(hidden_layer_sizes=(5,), max_iter=15, n_iter_no_change=np.inf,
                  learning_rate_init=0.01, random_state=0, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        weighted = Estimator(**kwargs).fit(X, y, sample_weight=sw)
        repeated = Estimator(**kwargs).fit(np.repeat(X, sw, axis=0), np.repeat(y, sw))
    np.testing.assert_allclose(weighted.network_.params, repeated.network_.params,
                               rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-10)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_weights_are_scale_free_and_score_the_validation_split():
    """fastbp's update follows sum w g / sum w with an unnormalized L2 term, so scaling
    every weight changes nothing; early stopping scores the held-out share weighted."""
    X, Y = _smooth(200)
    y = Y[:, 0]
    sw = np.random.default_rng(1).uniform(0, 2, 200)
    kwargs = dict(hidden_layer_sizes=(8,), alpha=0.1, max_iter=8, early_stopping=True,
                  learning_rate_init=0.01, random_state=0)
    reg = MLPRegressor(**kwargs).fit(X, y, sample_weight=sw)
    scaled = MLPRegressor(**kwargs).fit(X, y, sample_weight=3 * sw)
    np.testing.assert_allclose(scaled.network_.params, reg.network_.params, rtol=1e-9)
    rng = np.random.RandomState(0)
    rng.randint(2 ** 31 - 1, size=2)
    _, X_val, _, y_val, _, sw_val = train_test_split(X, y, sw, test_size=0.1,
                                                     random_state=rng)
    assert reg.score(X_val, y_val, sample_weight=sw_val) == pytest.approx(
        reg.best_validation_score_, rel=1e-12)
    assert reg.score(X_val, y_val) != pytest.approx(reg.best_validation_score_, rel=1e-6)
    # sklearn's positional order: partial_fit(X, y, sample_weight, classes)
    clf = MLPClassifier(hidden_layer_sizes=(3,)).partial_fit(X, y > 0, sw, [False, True])
    assert list(clf.classes_) == [False, True]


@pytest.mark.parametrize("sample_weight,match", [
    (-np.ones(20), "sample_weight"),
    (np.ones(21), "sample_weight"),
    (np.ones((20, 2)), "1D array"),
    (np.r_[np.nan, np.ones(19)], "NaN"),
    (np.zeros(20), "zero"),
    ("train", "zero on every training sample"),
    ("validation", "zero on every sample of the early-stopping validation split"),
])
def test_bad_sample_weight_fails_before_anything_changes(sample_weight, match):
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    reg = MLPRegressor(early_stopping=True, validation_fraction=0.5, random_state=2)
    if isinstance(sample_weight, str):  # weight on one side of the split only
        rng = np.random.RandomState(2)
        rng.randint(2 ** 31 - 1, size=2)
        train, _ = train_test_split(np.arange(20), test_size=0.5, random_state=rng)
        on_train = np.isin(np.arange(20), train)
        sample_weight = (on_train if sample_weight == "validation" else ~on_train) * 1.0
    with pytest.raises(ValueError, match=match):
        reg.fit(X, y, sample_weight=sample_weight)
    assert not hasattr(reg, "network_")


# -- early stopping split, threads, warm start ----------------------------------------------

@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_early_stopping_split_as_scikit_learn():
    """scikit-learn stratifies the split for one output column only: multiclass data
    too small to stratify (2 held-out rows, 3 classes) fits; binary data is stratified
    on the 0/1 column, so its error names the class 'True'."""
    X = np.random.default_rng(0).normal(size=(10, 2))
    y = np.array([0, 1, 2] * 3 + [0])
    clf = MLPClassifier(hidden_layer_sizes=(3,), early_stopping=True,
                        validation_fraction=0.2, max_iter=3, random_state=0).fit(X, y)
    rng = np.random.RandomState(0)
    rng.randint(2 ** 31 - 1, size=2)
    _, X_val, _, y_val = train_test_split(X, y, test_size=0.2, random_state=rng)
    # the held-out rows are the unstratified split's: the kept weights score them best
    assert clf.score(X_val, y_val) == clf.best_validation_score_
    assert len(clf.validation_scores_) == 3
    with pytest.raises(ValueError, match="least populated class") as info:
        MLPClassifier(early_stopping=True).fit(X[:4], [0, 0, 0, 1])
    if "too few members" in str(info.value):  # scikit-learn >= 1.8 names the classes
        assert "too few members are: ['True']" in str(info.value)


def test_threads_reach_the_trainer_and_change_no_result():
    import numba
    X, y = load_digits()
    X, y = X[:200], y[:200]
    before = numba.get_num_threads()
    kwargs = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = MLPClassifier(threads=1, **kwargs).fit(X, y)
        default = MLPClassifier(**kwargs).fit(X, y)
    assert one._trainer.threads == 1 and default._trainer.threads is None
    np.testing.assert_array_equal(one.network_.params, default.network_.params)
    np.testing.assert_array_equal(one.predict_proba(X), default.predict_proba(X))
    assert numba.get_num_threads() == before
    one.set_params(threads=2).partial_fit(X, y)
    assert one._trainer.threads == 2


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_start_classes_message():
    """scikit-learn's test_warm_start with adam in place of lbfgs (which it needs)."""
    X, y = load_digits()
    X, y = X[:150], y[:150] % 3
    clf = MLPClassifier(hidden_layer_sizes=2, warm_start=True, max_iter=2,
                        random_state=42).fit(X, y)
    clf.fit(X, y)
    message = ("warm_start can only be used where `y` has the same classes as in the "
               "previous call to fit. Previously got [0 1 2], `y` has [0 1 2 3]")
    with pytest.raises(ValueError, match=re.escape(message)):
        clf.fit(X, np.r_[y[:-1], 3])


# -- the README's example -------------------------------------------------------------------

def _readme_sklearn_example():
    text = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## scikit-learn"):]
    return section[section.index("```python") + 9:section.index("```\n", section.index("```python"))]


def test_readme_grid_search_example_reaches_a_good_score_in_every_cell():
    """The README's GridSearchCV example as written, with every cell of its grid fitted
    once on the example's training rows and scored on its held-out rows (cross-validating
    every cell would cost five times as much)."""
    import fastbp
    from sklearn.model_selection import ParameterGrid

    cells = {}

    class OneFitPerCell:  # stands in for GridSearchCV
        def __init__(self, estimator, grid):
            self.estimator, self.grid = estimator, grid

        def fit(self, X, y):
            for params in ParameterGrid(self.grid):
                cells[str(params)] = clone(self.estimator).set_params(**params).fit(X, y)
            return self

        def score(self, X, y):
            for key, est in cells.items():
                cells[key] = est.score(X, y)

    X, y = load_digits()
    code = _readme_sklearn_example().replace("import GridSearchCV, ", "import ")
    assert "GridSearchCV(" in code and "import GridSearchCV" not in code
    exec(code, {"fastbp": fastbp, "GridSearchCV": OneFitPerCell, "X": X, "y": y})
    assert len(cells) == 4 and min(cells.values()) > 0.9, cells


# -- a failed refit leaves the estimator as it was (issue 13.3) ----------------------------

def _fitted_state(est):
    keep = ("classes_", "n_features_in_", "n_outputs_", "network_", "_label_binarizer",
            "_trainer", "loss_curve_")
    return {k: getattr(est, k) for k in keep if hasattr(est, k)}


@pytest.mark.parametrize("how", ["split", "features", "partial_fit_classes"])
def test_failed_refit_leaves_the_estimator_as_it_was(how):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    y = np.array(["a", "b"] * 20)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    before, predicted = _fitted_state(clf), clf.predict(X)
    params = clf.network_.params.copy()
    if how == "split":
        # new labels, then a split that cannot be made: 3 samples, validation of 1 < 2
        clf.set_params(early_stopping=True)
        with pytest.raises(ValueError):
            clf.fit(X[:3, :2], np.array([7, 8, 9]))
        clf.set_params(early_stopping=False)
    elif how == "features":
        with pytest.raises(ValueError):
            clf.fit(X[:, :2], np.concatenate([y[:-1], ["zzz"]]), sample_weight=-np.ones(40))
    else:
        with pytest.raises(ValueError, match="classes"):
            clf.partial_fit(np.zeros((2, 5)), np.array([5, 6]), classes=[5, 6, 7])
    after = _fitted_state(clf)
    assert after.keys() == before.keys()
    for k in before:
        assert after[k] is before[k], k
    assert clf.n_features_in_ == 3
    np.testing.assert_array_equal(clf.network_.params, params)
    np.testing.assert_array_equal(clf.predict(X), predicted)
    assert set(clf.predict(X)) <= {"a", "b"}


def test_failed_first_fit_leaves_no_fitted_attributes():
    clf = MLPClassifier(hidden_layer_sizes=(4,), early_stopping=True)
    with pytest.raises(ValueError):
        clf.fit(np.zeros((3, 2)), [0, 1, 2])
    assert not [k for k in vars(clf) if k.endswith("_") and not k.startswith("__")]
    with pytest.raises(NotFittedError):
        clf.predict(np.zeros((1, 2)))


# -- solver="lbfgs" -------------------------------------------------------------------------

def _small_digits(n=240):
    X, y = load_digits()
    return X[:n].astype(np.float64), y[:n]


def test_lbfgs_objective_is_the_mean_cost_plus_the_l2_term():
    """What L-BFGS-B minimizes, through scikit-learn's own entry point (packed as
    scikit-learn packs coefs_ and intercepts_): the weighted mean cost over all rows plus
    (alpha / 2) * sum W**2, and its gradient the kernels' plus alpha * W."""
    from sklearn.preprocessing import LabelBinarizer
    X, y = _small_digits(60)
    Y = LabelBinarizer().fit(y).transform(y).astype(float)
    sw = np.random.default_rng(0).uniform(0, 2, 60)
    clf = MLPClassifier(hidden_layer_sizes=(7,), solver="lbfgs", alpha=0.3, max_iter=2,
                        random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    net = clf.network_
    theta = np.hstack([c.ravel() for c in clf.coefs_] + [b for b in clf.intercepts_])
    value, grad = clf._loss_grad_lbfgs(theta * 0.5, X, Y, sw, [], [], [], [])
    np.testing.assert_array_equal(net.params, 0.5 * net.params * 2)  # set to theta / 2
    penalty = 0.15 * sum(float((W ** 2).sum()) for W in net.weights)
    assert value == pytest.approx(net.loss(X, Y, sample_weight=sw) + penalty, rel=1e-12)
    dW, db = net.gradients(X, Y, sample_weight=sw)
    want = np.hstack([(g + 0.3 * W).T.ravel() for g, W in zip(dW, net.weights)] + db)
    np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-15)


def test_lbfgs_fits_with_scikit_learns_attributes():
    X, y = _small_digits()
    clf = MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=300,
                        random_state=0).fit(X, y)
    assert clf.score(X, y) == 1.0 and 0 < clf.n_iter_ < 300
    assert len(clf.loss_curve_) == clf.n_iter_ and clf.loss_curve_[-1] == clf.loss_
    assert clf.loss_ == pytest.approx(clf.network_.loss(X, y), rel=1e-12)  # no L2 term
    assert clf.best_loss_ is None and clf.validation_scores_ is None
    assert clf.best_validation_score_ is None and clf._trainer is None
    assert not hasattr(clf, "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as info:
        clf.partial_fit(X, y)
    assert "solver='lbfgs' fits on all the data" in str(info.value.__cause__)
    # Pickled and cloned like any fit; the same seed gives the same weights.
    twin = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(twin.predict_proba(X), clf.predict_proba(X))
    again = clone(clf).fit(X, y)
    np.testing.assert_array_equal(again.network_.params, clf.network_.params)


def test_lbfgs_stops_on_max_iter_and_max_fun_with_a_warning(capsys):
    X, Y = _smooth(200)
    with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after 3 "
                                                r"iteration\(s\).*\(max_iter=3\)"):
        reg = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=3,
                           verbose=True, random_state=0).fit(X, Y[:, 0])
    assert reg.n_iter_ == 3 == len(reg.loss_curve_)
    assert capsys.readouterr().out.count("Iteration") == 3
    with pytest.warns(ConvergenceWarning, match=r"max_fun=6"):
        reg = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_fun=6,
                           random_state=0).fit(X, Y[:, 0])
    assert reg.n_iter_ <= 6


# -- class_weight ---------------------------------------------------------------------------

def _unbalanced():
    X, y = load_digits()
    keep = np.flatnonzero(y < 3)
    keep = keep[(y[keep] != 2) | (np.arange(keep.size) % 4 == 0)]  # class 2: a quarter
    return X[keep[:150]], y[keep[:150]]


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("class_weight", ["balanced", {0: 1.0, 1: 3.0, 2: 0.5}])
def test_class_weight_is_exactly_the_matching_sample_weight(solver, class_weight):
    from sklearn.utils.class_weight import compute_sample_weight
    X, y = _unbalanced()
    sw = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    kwargs = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=8, random_state=0)
    by_class = compute_sample_weight(class_weight, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for given, same in ((None, by_class), (sw, by_class * sw)):
            a = MLPClassifier(class_weight=class_weight, **kwargs).fit(X, y, sample_weight=given)
            b = MLPClassifier(**kwargs).fit(X, y, sample_weight=same)
            np.testing.assert_array_equal(a.network_.params, b.network_.params)
            assert a.loss_curve_ == b.loss_curve_
        plain = MLPClassifier(**kwargs).fit(X, y)
    assert not np.array_equal(plain.network_.params, a.network_.params)


def test_class_weight_in_partial_fit_and_multilabel():
    from sklearn.utils.class_weight import compute_sample_weight
    X, y = _unbalanced()
    weights = {0: 2.0, 1: 1.0, 2: 4.0}
    a = MLPClassifier(hidden_layer_sizes=(6,), class_weight=weights, random_state=0)
    b = MLPClassifier(hidden_layer_sizes=(6,), random_state=0)
    for _ in range(2):
        a.partial_fit(X, y, classes=[0, 1, 2])
        b.partial_fit(X, y, classes=[0, 1, 2],
                      sample_weight=compute_sample_weight(weights, y))
    np.testing.assert_array_equal(a.network_.params, b.network_.params)
    with pytest.raises(ValueError, match="class_weight='balanced' is not supported by "
                                         "partial_fit"):
        a.set_params(class_weight="balanced").partial_fit(X, y)
    Y = np.c_[y == 0, y == 2].astype(int)  # multilabel: a weight per label and class
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(hidden_layer_sizes=(6,), class_weight="balanced", max_iter=5,
                          random_state=0).fit(X, Y)
        b = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(
            X, Y, sample_weight=compute_sample_weight("balanced", Y))
    np.testing.assert_array_equal(a.network_.params, b.network_.params)


def test_class_weight_is_the_classifiers_parameter_only():
    clf = MLPClassifier(class_weight="balanced", solver="lbfgs")
    assert clf.get_params()["class_weight"] == "balanced"
    assert clone(clf).class_weight == "balanced" and "class_weight" in repr(clf)
    assert "class_weight" not in MLPRegressor().get_params()
    with pytest.raises(TypeError):
        MLPRegressor(class_weight="balanced")
    assert "class_weight : dict" in MLPClassifier.__doc__
