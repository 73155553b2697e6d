"""scikit-learn estimators over fastbp: :class:`MLPClassifier` and :class:`MLPRegressor`.

They wrap :class:`~fastbp.Network` and :class:`~fastbp.Trainer` behind the interface of
``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` (fit, predict, score,
partial_fit, get_params/set_params), so fastbp drops into pipelines and grid searches.
The machinery both share lives in ``fastbp._estimator_base``.

scikit-learn is optional for fastbp as a whole and required by this module only.
"""
import numpy as np

from fastbp import _validate
from fastbp._estimator_base import (_ATTRIBUTES_DOC, _NOT_SUPPORTED_DOC, _PARAMETERS_DOC,
                                    _BaseMLP)
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d, validate_data

__all__ = ["MLPClassifier", "MLPRegressor"]


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = """Multilayer perceptron classifier trained by fastbp's backpropagation kernels.

    A scikit-learn estimator over :class:`fastbp.Network` and :class:`fastbp.Trainer`.
    Class labels of any kind (integers, strings, ...) are mapped to ``classes_``.

    - multiclass (3 or more classes): a ``softmax`` output with one unit per class and
      categorical cross-entropy;
    - binary: **one** ``sigmoid`` output unit with binary cross-entropy (as scikit-learn
      does); it estimates the probability of ``classes_[1]``, and ``predict_proba``
      returns the two columns ``1 - p, p``;
    - multilabel (a 2-D 0/1 indicator ``y``): one ``sigmoid`` unit per label with binary
      cross-entropy; each label is predicted where its probability exceeds 0.5.
    """ + _PARAMETERS_DOC + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the columns of ``predict_proba``.
    """ + _ATTRIBUTES_DOC + """
    See Also
    --------
    MLPRegressor : the regression counterpart.
    sklearn.neural_network.MLPClassifier : the estimator this one mirrors.

    Notes
    -----""" + _NOT_SUPPORTED_DOC + """
    Examples
    --------
    >>> from fastbp.datasets import load_digits
    >>> from fastbp.estimators import MLPClassifier
    >>> X, y = load_digits()
    >>> clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=30, random_state=0)
    >>> clf.fit(X[:1400], y[:1400]).score(X[1400:], y[1400:]) > 0.9  # doctest: +SKIP
    True
    """

    def fit(self, X, y):
        """Train the network on (X, y) for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 indicator matrix for multilabel classification.

        Returns
        -------
        self : MLPClassifier
            The fitted estimator.

        Warns
        -----
        ConvergenceWarning
            When ``max_iter`` epochs ran without the stopping criterion being met.
        """
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """Train for one epoch over (X, y), continuing from the current network.

        The optimizer state (momentum) carries over from one call to the next.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels (a subset of ``classes`` is fine), or a 0/1 indicator matrix.
        classes : array-like of shape (n_classes,), default=None
            All the classes the calls will ever see. Required on the first call (unless
            the estimator was fitted before), ignored if equal to ``classes_`` later.

        Returns
        -------
        self : MLPClassifier
            The updated estimator.
        """
        if not hasattr(self, "network_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(unique_labels(classes))
            self._check_classes(self._label_binarizer)
        elif classes is not None and not np.array_equal(self.classes_, unique_labels(classes)):
            raise ValueError(f"classes={unique_labels(classes)!r} is not the same as on the "
                             f"first call to partial_fit, {self.classes_!r}.")
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Predicted labels from ``classes_`` (a 0/1 matrix for multilabel problems).
        """
        P = self._forward(X)
        return self._label_binarizer.inverse_transform(P.ravel() if P.shape[1] == 1 else P)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float64
            Probability of each class, columns in the order of ``classes_``; for a
            binary problem ``[1 - p, p]`` from the single sigmoid output. For multilabel
            problems, the probability of each label independently.
        """
        P = self._forward(X)
        if P.shape[1] == 1 and len(self.classes_) == 2:
            return np.hstack([1 - P, P])
        return P

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    # -- hooks ----------------------------------------------------------------------------

    @staticmethod
    def _check_classes(binarizer):
        if binarizer.y_type_ != "multilabel-indicator" and len(binarizer.classes_) < 2:
            raise ValueError("MLPClassifier needs samples of at least 2 classes; y holds "
                             f"one class only: {binarizer.classes_!r}")

    def _validate_targets(self, X, y, reset, incremental):
        X, y = validate_data(self, X, y, multi_output=True, reset=reset,
                             dtype=_validate.as_dtype(self.dtype))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if reset and not incremental:
            binarizer = LabelBinarizer().fit(y)
            self._check_classes(binarizer)
            self._label_binarizer = binarizer
            self.classes_ = binarizer.classes_
        else:
            self.classes_ = self._label_binarizer.classes_
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where y has the same "
                                     f"classes as in the previous call to fit. Previously "
                                     f"got {self.classes_}, y has {classes}")
            elif len(np.setdiff1d(classes, self.classes_)):
                raise ValueError(f"y has classes not in classes_ {self.classes_}: "
                                 f"{np.setdiff1d(classes, self.classes_)}")
        Y = self._label_binarizer.transform(y).astype(X.dtype)
        return X, Y, y

    def _output(self):
        multiclass = self._label_binarizer.y_type_ == "multiclass"
        return ("softmax" if multiclass else "sigmoid"), "cross_entropy"

    def _score_arrays(self, X, y):
        P = self.network_.forward(X, backend=self.backend)
        return accuracy_score(y, self._label_binarizer.inverse_transform(
            P.ravel() if P.shape[1] == 1 else P))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = """Multilayer perceptron regressor trained by fastbp's backpropagation kernels.

    A scikit-learn estimator over :class:`fastbp.Network` and :class:`fastbp.Trainer`:
    an ``identity`` output layer with one unit per target and the ``mse`` loss,
    ``0.5 * sum_j (y_j - a_j)**2`` per sample. Multi-output targets are supported; a
    1-D ``y`` gives 1-D predictions. Targets are not rescaled: standardize them if
    their scale is far from 1.
    """ + _PARAMETERS_DOC + """
    Attributes
    ----------""" + _ATTRIBUTES_DOC + """
    See Also
    --------
    MLPClassifier : the classification counterpart.
    sklearn.neural_network.MLPRegressor : the estimator this one mirrors.

    Notes
    -----""" + _NOT_SUPPORTED_DOC + """
    Examples
    --------
    >>> import numpy as np
    >>> from fastbp.estimators import MLPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (500, 2))
    >>> y = np.sin(2 * X[:, 0]) * X[:, 1]
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), activation="tanh", random_state=0)
    >>> reg.fit(X, y).predict(X[:3]).shape  # doctest: +SKIP
    (3,)
    """

    def fit(self, X, y):
        """Train the network on (X, y) for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Real-valued targets.

        Returns
        -------
        self : MLPRegressor
            The fitted estimator.

        Warns
        -----
        ConvergenceWarning
            When ``max_iter`` epochs ran without the stopping criterion being met.
        """
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y):
        """Train for one epoch over (X, y), continuing from the current network.

        The optimizer state (momentum) carries over from one call to the next.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Real-valued targets.

        Returns
        -------
        self : MLPRegressor
            The updated estimator.
        """
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predict the targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs), float64
            Predictions; 1-D when the network has one output.
        """
        Y = self._forward(X)
        return Y.ravel() if Y.shape[1] == 1 else Y

    # -- hooks ----------------------------------------------------------------------------

    def _validate_targets(self, X, y, reset, incremental):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, reset=reset,
                             dtype=_validate.as_dtype(self.dtype))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        with np.errstate(over="ignore"):
            Y = np.ascontiguousarray(y.reshape(len(y), -1), dtype=X.dtype)
        if not np.isfinite(Y).all():
            raise ValueError(f"y holds values too large for dtype={self.dtype!r} "
                             f"(largest magnitude {np.abs(y).max():g}); rescale y or use "
                             "dtype='float64'")
        return X, Y, y

    def _output(self):
        return "identity", "mse"

    def _score_arrays(self, X, y):
        Y = self.network_.forward(X, backend=self.backend).astype(np.float64)
        return r2_score(y, Y.ravel() if Y.shape[1] == 1 else Y)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
