"""scikit-learn estimators over fastbp: :class:`MLPClassifier` and :class:`MLPRegressor`.

They wrap :class:`~fastbp.Network` and :class:`~fastbp.Trainer` behind the interface of
``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` (fit, predict, score,
partial_fit, get_params/set_params), so fastbp drops into pipelines and grid searches.
The machinery both share lives in ``fastbp._estimator_base`` (and the modules it
names), the documentation of their parameters in ``fastbp._estimator_docs``.

scikit-learn is optional for fastbp as a whole and required by this module only.
"""
from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastbp._estimator_base import BaseMLP, MatrixLike, stochastic_only
from fastbp._estimator_docs import (CLASS_WEIGHT_DOC, PARTIAL_FIT_DOC, PREDICT_X_DOC,
                                    class_doc, fill)
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d, validate_data

__all__ = ["MLPClassifier", "MLPRegressor"]

if TYPE_CHECKING:
    from typing_extensions import Self


def _validated(est, X, y, reset, dtype, **kwargs):
    """X (CSR/CSC kept sparse) and y checked as scikit-learn's MLPs check them; a
    column-vector y becomes 1-D (with scikit-learn's warning)."""
    X, y = validate_data(est, X, y, multi_output=True, reset=reset, dtype=dtype,
                         accept_sparse=("csr", "csc"), **kwargs)
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    return X, y


def _with_class_weight(cls):
    """Class decorator: ``cls.__init__`` takes BaseMLP's parameters and, last and
    keyword-only, ``class_weight=None``; its signature says so (get_params, clone and
    help read it), so the shared signature is written once, in BaseMLP."""
    shared = BaseMLP.__init__

    def __init__(self, *args, class_weight=None, **kwargs):
        shared(self, *args, **kwargs)
        self.class_weight = class_weight

    signature = inspect.signature(shared)
    own = inspect.Parameter("class_weight", inspect.Parameter.KEYWORD_ONLY, default=None,
                            annotation="str | Mapping[Any, float] | None")
    __init__.__signature__ = signature.replace(
        parameters=[*signature.parameters.values(), own])
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = __init__
    return cls


@_with_class_weight
class MLPClassifier(ClassifierMixin, BaseMLP):
    __doc__ = class_doc("MLPClassifier", """Multilayer perceptron classifier trained by fastbp's backpropagation kernels.

    A scikit-learn estimator over :class:`fastbp.Network` and :class:`fastbp.Trainer`.
    Class labels of any kind (integers, strings, ...) are mapped to ``classes_``.

    - multiclass (3 or more classes): a ``softmax`` output with one unit per class and
      categorical cross-entropy;
    - binary: **one** ``sigmoid`` output unit with binary cross-entropy (as scikit-learn
      does); it estimates the probability of ``classes_[1]``, and ``predict_proba``
      returns the two columns ``1 - p, p``;
    - multilabel (a 2-D 0/1 indicator ``y``): one ``sigmoid`` unit per label with binary
      cross-entropy; each label is predicted where its probability exceeds 0.5;
    - one class: as scikit-learn, the network is trained on a single all-zero sigmoid
      target; ``predict`` returns that class.

    ``class_weight`` reweighs the classes as ``sample_weight`` reweighs the samples.
    """, parameters=CLASS_WEIGHT_DOC, attributes="""
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the columns of ``predict_proba``.""", examples="""\
    >>> from fastbp.datasets import load_digits
    >>> from fastbp.estimators import MLPClassifier
    >>> X, y = load_digits()
    >>> clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=0)
    >>> clf.fit(X[:1400], y[:1400]).score(X[1400:], y[1400:]) > 0.9  # doctest: +SKIP
    True
    """)

    if TYPE_CHECKING:  # what _with_class_weight makes of BaseMLP's signature, for checkers
        def __init__(self, *args: Any,
                     class_weight: str | Mapping[Any, float] | None = None,
                     **kwargs: Any) -> None: ...

    @available_if(stochastic_only)
    @fill(PARTIAL_FIT_DOC, name="MLPClassifier", extra="""
        classes : array-like of shape (n_classes,), default=None
            All the classes the calls will ever see. Required on the first call (unless
            the estimator was fitted before), ignored if equal to ``classes_`` later.""",
          y="""array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels (a subset of ``classes`` is fine), or a 0/1 indicator matrix.""")
    def partial_fit(self, X: MatrixLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
                    classes: ArrayLike | None = None) -> Self:
        binarizer = None
        if not hasattr(self, "network_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                binarizer.fit(y)
            else:
                binarizer.fit(unique_labels(classes))
        elif classes is not None and not np.array_equal(self.classes_, unique_labels(classes)):
            raise ValueError(f"classes={unique_labels(classes)!r} is not the same as on the "
                             f"first call to partial_fit, {self.classes_!r}.")
        return self._fit(X, y, sample_weight, incremental=True, binarizer=binarizer)

    def predict(self, X: MatrixLike) -> NDArray[Any]:
        P = self._forward(X)
        return self._label_binarizer.inverse_transform(P.ravel() if P.shape[1] == 1 else P)

    predict.__doc__ = "Predict class labels.\n" + PREDICT_X_DOC + """
        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Predicted labels from ``classes_`` (a 0/1 matrix for multilabel problems).
        """

    def predict_proba(self, X: MatrixLike) -> NDArray[np.floating]:
        P = self._forward(X)
        if len(self.classes_) == 1 and self._label_binarizer.y_type_ != "multilabel-indicator":
            return np.ones_like(P)  # the only class, certain
        if P.shape[1] == 1 and len(self.classes_) == 2:
            return np.hstack([1 - P, P])
        return P

    predict_proba.__doc__ = "Probability estimates.\n" + PREDICT_X_DOC + """
        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probability of each class, columns in the order of ``classes_``; for a
            binary problem ``[1 - p, p]`` from the single sigmoid output; for one class
            a column of ones. For multilabel problems, the probability of each label
            independently.
        """

    def predict_log_proba(self, X: MatrixLike) -> NDArray[np.floating]:
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    predict_log_proba.__doc__ = "Logarithm of :meth:`predict_proba`.\n" + PREDICT_X_DOC + """
        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """

    # -- hooks ----------------------------------------------------------------------------

    def _validate_targets(self, X, y, reset, incremental, dtype, binarizer=None):
        X, y = _validated(self, X, y, reset, dtype)
        check_classification_targets(y)
        if reset and not incremental:
            binarizer = LabelBinarizer().fit(y)
        else:  # partial_fit's first call brings its binarizer; later calls keep theirs
            binarizer = binarizer or self._label_binarizer
            known, classes = binarizer.classes_, unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(known):
                    raise ValueError("warm_start can only be used where `y` has the same "
                                     f"classes as in the previous call to fit. Previously "
                                     f"got {known}, `y` has {classes}")
            elif len(np.setdiff1d(classes, known)):
                raise ValueError(f"y has classes not in classes_ {known}: "
                                 f"{np.setdiff1d(classes, known)}")
        Y = binarizer.transform(y).astype(X.dtype)
        return X, Y, y, {"_label_binarizer": binarizer, "classes_": binarizer.classes_}

    def _class_sample_weight(self, y, incremental):
        if self.class_weight is None:
            return None
        if incremental and isinstance(self.class_weight, str):
            raise ValueError(f"class_weight={self.class_weight!r} is not supported by "
                             "partial_fit: it needs the class counts of all the data, "
                             "which one call does not see; pass a dict of weights, or the "
                             "weights as sample_weight")
        return compute_sample_weight(self.class_weight, y)

    def _output(self, targets):
        multiclass = targets["_label_binarizer"].y_type_ == "multiclass"
        return ("softmax" if multiclass else "sigmoid"), "cross_entropy"

    def _score_arrays(self, X, y, sample_weight):
        P = self.network_.forward(X, backend=self.backend)
        if not np.isfinite(P).all():
            return np.nan
        return accuracy_score(y, self._label_binarizer.inverse_transform(
            P.ravel() if P.shape[1] == 1 else P), sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMLP):
    __doc__ = class_doc("MLPRegressor", """Multilayer perceptron regressor trained by fastbp's backpropagation kernels.

    A scikit-learn estimator over :class:`fastbp.Network` and :class:`fastbp.Trainer`:
    an ``identity`` output layer with one unit per target and the ``mse`` loss,
    ``0.5 * sum_j (y_j - a_j)**2`` per sample. Multi-output targets are supported; a
    1-D ``y`` gives 1-D predictions. Targets are not rescaled: standardize them if
    their scale is far from 1.
    """, examples="""\
    >>> import numpy as np
    >>> from fastbp.estimators import MLPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (500, 2))
    >>> y = np.sin(2 * X[:, 0]) * X[:, 1]
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), activation="tanh", random_state=0)
    >>> reg.fit(X, y).predict(X[:3]).shape  # doctest: +SKIP
    (3,)
    """)

    @available_if(stochastic_only)
    @fill(PARTIAL_FIT_DOC, name="MLPRegressor", extra="",
          y="""array-like of shape (n_samples,) or (n_samples, n_outputs)
            Real-valued targets.""")
    def partial_fit(self, X: MatrixLike, y: ArrayLike,
                    sample_weight: ArrayLike | None = None) -> Self:
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: MatrixLike) -> NDArray[np.floating]:
        Y = self._forward(X)
        return Y.ravel() if Y.shape[1] == 1 else Y

    predict.__doc__ = "Predict the targets.\n" + PREDICT_X_DOC + """
        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predictions, float32 when the network and X are float32, else float64;
            1-D when the network has one output.
        """

    # -- hooks ----------------------------------------------------------------------------

    def _validate_targets(self, X, y, reset, incremental, dtype, binarizer=None):
        X, y = _validated(self, X, y, reset, dtype, y_numeric=True)
        with np.errstate(over="ignore"):
            Y = np.ascontiguousarray(y.reshape(len(y), -1), dtype=X.dtype)
        if not np.isfinite(Y).all():
            raise ValueError(f"y holds values too large for {X.dtype} (largest magnitude "
                             f"{np.abs(y).max():g}); rescale y or use dtype='float64'")
        return X, Y, y, {}

    def _output(self, targets):
        return "identity", "mse"

    def _score_arrays(self, X, y, sample_weight):
        Y = self.network_.forward(X, backend=self.backend)
        if not np.isfinite(Y).all():
            return np.nan
        return r2_score(y, Y.ravel() if Y.shape[1] == 1 else Y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


# skl2onnx converts pipelines holding these estimators once fastbp's converters are
# registered: here when skl2onnx is already loaded (importing it costs seconds, so it is
# never imported for this), else by any estimator's to_onnx or by
# fastbp.onnx_export.register_skl2onnx().
if "skl2onnx" in sys.modules:
    from fastbp import onnx_export
    onnx_export.register_skl2onnx()
