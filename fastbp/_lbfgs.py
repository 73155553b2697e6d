"""``solver="lbfgs"`` of fastbp's scikit-learn estimators: L-BFGS-B (``scipy.optimize``)
over the full-batch objective, whose loss and gradient fastbp's compiled kernels compute
over all rows at once (:meth:`fastbp.Network.loss` and :meth:`~fastbp.Network.gradients`).

The objective is the one every fastbp update descends, taken over the whole data set:

    f(w) = sum_s v_s C_s(w) / sum_s v_s + (alpha / 2) * sum_m ||W[m]||^2

with C_s the per-sample cost, v_s the sample weights (1 without them) and alpha the
estimator's ``alpha`` (fastbp's ``Trainer(l2=alpha)``; biases are not penalized).
scikit-learn's is the same with ``alpha / sum_s v_s`` in place of alpha. L-BFGS-B works in
float64; each evaluation copies its point into the network (rounded to the network's
dtype) and the kernels compute in that dtype.
"""
import numpy as np
import scipy.optimize


class Objective:
    """f(w) and its gradient for L-BFGS-B, over the rows of (X, Y).

    Call it with a (P,) point laid out as ``net.params``: it writes the point into the
    network and returns (f, gradient as float64 (P,)). ``last`` keeps the point and the
    mean cost (f without the L2 term) of the latest call.
    """

    def __init__(self, net, X, Y, sample_weight, alpha, backend):
        self.net, self.X, self.Y, self.sw = net, X, Y, sample_weight
        self.alpha, self.backend = float(alpha), backend
        self.penalized = np.zeros(net.n_params)  # 1 for a weight, 0 for a bias
        for W in net.unflatten(self.penalized)[0]:
            W[...] = 1
        self.last = None

    def __call__(self, x):
        net = self.net
        net.params = x
        w = net.params.astype(np.float64)  # the point as the kernels see it
        cost = net.loss(self.X, self.Y, backend=self.backend, sample_weight=self.sw)
        dW, db = net.gradients(self.X, self.Y, backend=self.backend, sample_weight=self.sw)
        grad = np.concatenate([g.ravel() for pair in zip(dW, db) for g in pair])
        grad = grad.astype(np.float64) + self.alpha * self.penalized * w
        self.last = np.array(x, np.float64), cost
        return cost + 0.5 * self.alpha * float(np.dot(self.penalized * w, w)), grad

    def cost_at(self, x):
        """Mean cost (without the L2 term) at x, with the network's parameters set to x:
        the latest call's where it was at x, else computed."""
        if self.last is None or not np.array_equal(self.last[0], x):
            self(x)
        return self.last[1]


def minimize(objective, x0, max_iter, max_fun, tol, on_iteration):
    """scikit-learn's ``_fit_lbfgs``: L-BFGS-B from x0 with ``maxiter=max_iter``,
    ``maxfun=max_fun`` and ``gtol=tol``; ``on_iteration(mean cost)`` after every
    iteration. Leaves the network at the result's point.

    Returns
    -------
    (n_iter, mean cost, result) : the iterations run (at most max_iter, as scikit-learn
    counts them), the mean cost at the result's point, scipy's OptimizeResult.
    """
    result = scipy.optimize.minimize(
        objective, np.asarray(x0, np.float64), method="L-BFGS-B", jac=True,
        options=dict(maxiter=max_iter, maxfun=max_fun, gtol=tol),
        callback=lambda xk: on_iteration(objective.cost_at(xk)))
    cost = objective.cost_at(result.x)
    return min(int(result.nit), max_iter), cost, result


def convergence_message(name, n_iter, result, max_iter, max_fun):
    """The ConvergenceWarning's text for a run that stopped without converging (scipy's
    status != 0, as scikit-learn warns): which limit or failure stopped it."""
    text = (f"{name}: lbfgs failed to converge after {n_iter} iteration(s) "
            f"(status={result.status}): {result.message}.")
    if n_iter == max_iter:
        text += f" Increase the number of iterations (max_iter={max_iter})."
    elif result.nfev >= max_fun:
        text += f" Increase the number of loss evaluations (max_fun={max_fun})."
    return text + " You might also want to scale the data."


def sklearn_order(net):
    """Index array p such that ``flat[p]``, for a (P,) array laid out like
    ``net.params``, is laid out as scikit-learn packs its parameters: every layer's
    ``coefs_`` (n_in, n_out) row-major, then every layer's ``intercepts_``."""
    index = np.arange(net.n_params)
    weights, biases = net.unflatten(index)
    return np.concatenate([W.T.ravel() for W in weights] + list(biases))
