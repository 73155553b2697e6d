"""The documentation of fastbp's scikit-learn estimators: the parameter, attribute and
notes sections both share, and the method docstrings written once for both.

Kept apart from the code (fastbp/_estimator_base.py) so that each reads on its own; the
templates are filled in by :func:`class_doc` and :func:`fill`.
"""

PARAMETERS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer; ``()`` gives a network without hidden layers.
    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
        Activation of the hidden layers (``"logistic"`` is fastbp's ``"sigmoid"``,
        which is accepted too).
    solver : {"adam", "sgd", "rprop", "lbfgs"}, default="adam"
        ``"adam"``, ``"sgd"`` (classical or Nesterov momentum) and ``"rprop"`` (iRprop-;
        ``learning_rate_init`` is its initial step size; best with
        ``schedule="fullbatch"``) are :class:`fastbp.Trainer`'s optimizers, run over
        epochs inside the compiled kernels. ``"lbfgs"`` is L-BFGS-B
        (``scipy.optimize.minimize``) on the full-batch objective, its loss and gradient
        computed by the same kernels over all rows at once; it suits small data sets.
        It ignores the batch, schedule, step-size and early-stopping parameters and has
        no ``partial_fit``, as in scikit-learn.
    alpha : float, default=1e-4
        L2 penalty ``(alpha / 2) * sum W**2`` added to the *mean* per-sample cost of each
        update (fastbp's ``Trainer(l2=alpha)``; with ``"lbfgs"`` to the mean cost over all
        rows); biases are not penalized. scikit-learn divides its ``alpha`` by the batch
        size (by the number of samples for ``"lbfgs"``), so its ``alpha=a`` corresponds
        to ``alpha=a / batch_size`` here.
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
        Maximum number of epochs (passes over the training data) per ``fit``; for
        ``"lbfgs"`` the maximum number of L-BFGS iterations.
    shuffle : bool, default=True
        Visit the samples in a new random order every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialization, the shuffling and the early-stopping split.
        An int gives reproducible fits.
    tol : float, default=1e-4
        Improvement that counts: training stops when the training loss (or, with
        ``early_stopping``, the validation score) has not improved by at least ``tol``
        for more than ``n_iter_no_change`` consecutive epochs. For ``"lbfgs"`` it is
        L-BFGS-B's ``gtol``: it stops once every component of the projected gradient is
        at most ``tol`` (as scikit-learn).
    verbose : bool, default=False
        Print the loss (and validation score) after every epoch (L-BFGS iteration).
    warm_start : bool, default=False
        Continue from the fitted network on the next ``fit`` instead of starting anew.
        The optimizer state (momentum) restarts with every ``fit``; it carries over
        between ``partial_fit`` calls.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data, score it after every
        epoch, stop when the score stalls (see ``tol``) and keep the weights of the best
        epoch. Not available in ``partial_fit``; ignored by ``"lbfgs"``.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping, in (0, 1).
    n_iter_no_change : int or np.inf, default=10
        Epochs without an improvement of ``tol`` tolerated before stopping.
    max_fun : int, default=15000
        ``"lbfgs"`` only: the maximum number of evaluations of the loss and its gradient
        (L-BFGS-B's ``maxfun``); a fit may stop on it before ``max_iter`` iterations.
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

# MLPClassifier's own parameter, after those both estimators share.
CLASS_WEIGHT_DOC = """    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``sample_weight`` (see Notes): a dict
        ``{class: weight}``, or ``"balanced"``, ``n_samples / (n_classes * count)`` per
        class. A fit is exactly the fit with ``sample_weight`` times
        ``sklearn.utils.class_weight.compute_sample_weight(class_weight, y)`` (for a
        multilabel ``y`` a list of dicts, one per label, or ``"balanced"``).
        ``partial_fit`` takes a dict only: ``"balanced"`` needs all the data at once.
"""

ATTRIBUTES_DOC = """
    loss_ : float
        Training loss of the last epoch (``"lbfgs"``: at the final weights).
    loss_curve_ : list of float
        Training loss of every epoch, across warm-started fits and ``partial_fit`` calls:
        the mean per-sample cost of the samples seen in the epoch, each computed in the
        forward pass that produced its gradient, without the L2 term. For ``"lbfgs"``
        the mean cost over all rows after each iteration, without the L2 term.
    best_loss_ : float or None
        Lowest value in ``loss_curve_``; None with ``early_stopping`` and for
        ``"lbfgs"`` (which stops on its own criteria, not on the best loss).
    validation_scores_ : list of float or None
        Validation score after every epoch with ``early_stopping``, else None.
    best_validation_score_ : float or None
        Best of ``validation_scores_`` with ``early_stopping``, else None.
    n_iter_ : int
        Epochs (``"lbfgs"``: iterations) run by the last ``fit`` (1 after
        ``partial_fit``).
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

NOTES_DOC = """
    Sparse X (CSR or CSC) is densified once per ``fit`` in the network's dtype, because
    the loop kernels run an epoch's shuffled batches in one compiled call over a dense X;
    ``partial_fit`` on chunks of rows bounds that memory. ``predict`` densifies 4096 rows
    at a time.

    With ``sample_weight`` every update follows the weighted mean gradient of its batch,
    ``sum w g / sum w`` (a batch whose weights are all 0 makes no update), ``loss_curve_``
    is the weighted mean cost and the early-stopping score is weighted. Integer weights
    equal repeating rows only when each epoch is one full batch (``schedule="fullbatch"``,
    ``batch_size`` covering the data, or ``"lbfgs"``): with smaller batches repeated rows
    land in different batches; with ``schedule="online"`` a weight only tells 0 from not 0.

    ``to_onnx(path)`` writes the fitted estimator as an ONNX model with the outputs
    skl2onnx gives scikit-learn's own (``pip install "fastbp[onnx]"``); fastbp registers
    its converters with skl2onnx so that pipelines holding fastbp estimators convert with
    ``skl2onnx.to_onnx`` (see :mod:`fastbp.onnx_export`).

    Differences from scikit-learn's MLP estimators, each for a reason:

    - ``"rprop"`` is added; ``partial_fit`` exists for every solver but ``"lbfgs"``;
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
      ``mse``), where scikit-learn averages them: ``tol`` acts on that scale; ``loss_``
      and ``loss_curve_`` leave out the L2 term (scikit-learn's include it), and
      ``"lbfgs"`` records ``loss_curve_`` too;
    - no ``loss="poisson"`` for the regressor, no ``t_`` attribute; ``network_`` gives
      the trained :class:`fastbp.Network`;
    - for a ``y`` with one class, ``predict_proba`` has one column of ones (columns
      follow ``classes_``), where scikit-learn returns two.
"""

FIT_DOC = """Train the network on (X, y): up to ``max_iter`` epochs, or L-BFGS iterations.

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
            When ``max_iter`` epochs ran without the stopping criterion being met, a fit
            with ``early_stopping`` diverged (it keeps the best epoch's weights), or
            L-BFGS-B stopped on ``max_iter``, ``max_fun`` or a failed line search.
        """

# partial_fit's docstring, completed per estimator: y's description, extra parameters.
PARTIAL_FIT_DOC = """Train for one epoch over (X, y), continuing from the current network.

        The optimizer state (momentum, Adam's moments) carries over from one call to
        the next. Not available with ``solver="lbfgs"`` (as in scikit-learn).

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
PREDICT_X_DOC = """
        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Inputs.
"""

TO_ONNX_DOC = """Write the fitted estimator to ``path`` as an ONNX model (skl2onnx's
        conversion, with fastbp's converter registered; ``pip install "fastbp[onnx]"``).

        The outputs are those skl2onnx gives scikit-learn's own estimator: for
        ``MLPClassifier`` ``label`` and ``probabilities`` (a ZipMap of
        ``{{class: probability}}`` unless ``options={{"zipmap": False}}``), for
        ``MLPRegressor`` ``variable`` of shape (n, n_outputs).

        Parameters
        ----------
        path : str or path-like
        dtype : {{"float32", "float64"}}, default="float32"
            Type of the input ``X`` and of the model's arithmetic (the network's
            parameters are cast to it).
        options : dict, optional
            skl2onnx's options for this estimator, such as ``{{"zipmap": False}}``.
        target_opset : int, optional
            ONNX opset (at least 13); default: skl2onnx's.

        Returns
        -------
        onnx.ModelProto
            The model written.
        """


def fill(template, **fields):
    """A method's docstring from a shared template (one text for both estimators)."""
    def set_doc(method):
        method.__doc__ = template.format(**fields)
        return method
    return set_doc


def class_doc(name, intro, examples, attributes="", parameters=""):
    """The numpydoc docstring of estimator ``name``: its own introduction, extra
    parameters, extra attributes and examples around the sections both estimators share."""
    other = {"MLPClassifier": "MLPRegressor", "MLPRegressor": "MLPClassifier"}[name]
    role = {"MLPClassifier": "classification", "MLPRegressor": "regression"}[other]
    return (intro + PARAMETERS_DOC + parameters + "\n    Attributes\n    ----------"
            + attributes + ATTRIBUTES_DOC + f"""
    See Also
    --------
    {other} : the {role} counterpart.
    sklearn.neural_network.{name} : the estimator this one mirrors.

    Notes
    -----""" + NOTES_DOC + "\n    Examples\n    --------\n" + examples)
