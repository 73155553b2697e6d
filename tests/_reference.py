"""The float64 NumPy reference of the differential harness, with error bounds.

``reference(net, X, Y, sw)`` runs the equations of DESIGN.md section 1 in float64 on the
network's own parameters (cast exactly) and returns the outputs and the mean gradient,
each with a *bound*: how far a correct computation in the network's dtype may be from
them. The bound follows the standard forward error analysis of a sum of K products
(|error| <= gamma_K * sum |terms|, gamma_K ~ K * unit roundoff): every quantity carries
a magnitude -- the same computation on absolute values -- and a layer's error is the
rounding of its own sums plus the error it inherits, propagated through the same
magnitudes. The bound is loose by design (a factor of K where random rounding gives
sqrt(K)): it never fails a correct kernel, while a race, an indexing slip or a wrong
order of updates moves results by the size of the values themselves.
"""
import numpy as np

# Relative accuracy of vmath's float32 activations and of libm, with margin (vmath's
# docstring: tanh 4.75 ulp, sigmoid 2.46, exp 1.01).
_ACT_ULPS = 16


def _act(name, z):
    if name == "sigmoid":
        return 1 / (1 + np.exp(-np.clip(z, -700, 700)))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return z


def _derivative(name, a):
    if name == "sigmoid":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    if name == "relu":
        return (a > 0).astype(a.dtype)
    return np.ones_like(a)


def _lipschitz(name):
    return 0.25 if name == "sigmoid" else 1.0


def unit_roundoff(dtype):
    return float(np.finfo(dtype).eps) / 2


def reference(net, X, Y=None, sw=None):
    """Float64 forward pass (and with Y, the mean gradient of ``net.loss``) of ``net`` on X.

    Returns a dict: ``out`` (n, D[L]) and ``out_bound``; with Y also ``grad`` (P,) laid out
    like ``net.params`` and ``grad_bound``. Bounds are elementwise absolute errors allowed
    to a computation in ``net.dtype``.
    """
    u = unit_roundoff(net.dtype)
    f = np.float64
    Ws = [W.astype(f) for W in net.weights]
    bs = [b.astype(f) for b in net.biases]
    acts = net.activations
    a = X.astype(f)
    err = np.zeros_like(a)          # error a computation in the dtype may carry in a
    mag = np.abs(a)
    As, errs, mags = [a], [err], [mag]
    for W, b, name in zip(Ws, bs, acts):
        K = W.shape[1] + 1
        z = a @ W.T + b
        z_mag = mag @ np.abs(W).T + np.abs(b)
        # Own rounding of the sum (gamma_K on the magnitudes) plus inherited error.
        z_err = 2 * K * u * z_mag + err @ np.abs(W).T
        a = _act(name, z)
        if name == "softmax":
            # exp(z - max) / sum: relative error ~ (2 + D) u, plus z's error amplified by
            # at most 2 (|d softmax / d z| row sums <= 2 a_i).
            err = (2 * z.shape[1] + 4 + _ACT_ULPS) * u * a + 2 * a * z_err.max(axis=1, keepdims=True)
        else:
            err = _lipschitz(name) * z_err + _ACT_ULPS * u * np.abs(a) + 1e-300
        mag = np.abs(a) if name != "identity" else z_mag
        As.append(a)
        errs.append(err)
        mags.append(mag)
    out = {"out": a, "out_bound": err}
    if Y is None:
        return out
    n = X.shape[0]
    w = np.ones(n) if sw is None or len(sw) == 0 else sw.astype(f)
    total = w.sum()
    # Output delta: a - y for softmax/sigmoid + cross-entropy, (a - y) act' for mse.
    aL, name = As[-1], acts[-1]
    if net.loss_name == "cross_entropy":
        delta = aL * Y.sum(axis=1, keepdims=True) - Y if name == "softmax" else aL - Y
        d_err = errs[-1] * (1 + np.abs(Y).sum(axis=1, keepdims=True)) + 4 * u * (
            np.abs(aL) + np.abs(Y))
    elif name == "softmax":
        g = aL - Y
        delta = aL * (g - (g * aL).sum(axis=1, keepdims=True))
        d_err = 8 * errs[-1] * (1 + np.abs(g).sum(axis=1, keepdims=True)) + 16 * Y.shape[1] * u * (
            np.abs(aL) * (np.abs(g) + (np.abs(g) * np.abs(aL)).sum(axis=1, keepdims=True)))
    else:
        dv = _derivative(name, aL)
        delta = (aL - Y) * dv
        d_err = errs[-1] * (np.abs(dv) + 2 * np.abs(aL - Y) * (1 + 2 * np.abs(aL))) + 6 * u * (
            np.abs(aL - Y) * np.abs(dv) + np.abs(Y) * np.abs(dv))
    delta = delta * w[:, None]
    d_err = d_err * w[:, None] + 2 * u * np.abs(delta)
    d_mag = np.abs(delta)
    grads = [None] * len(Ws)
    for m in range(len(Ws), 0, -1):
        a_in, a_in_err, a_in_mag = As[m - 1], errs[m - 1], mags[m - 1]
        gW = delta.T @ a_in
        gW_mag = d_mag.T @ a_in_mag
        gW_err = 2 * (n + 1) * u * gW_mag + d_err.T @ a_in_mag + d_mag.T @ a_in_err
        gb = delta.sum(axis=0)
        gb_err = 2 * (n + 1) * u * d_mag.sum(axis=0) + d_err.sum(axis=0)
        grads[m - 1] = (gW, gb, gW_err, gb_err)
        if m > 1:
            W = Ws[m - 1]
            dv = _derivative(acts[m - 2], As[m - 1])
            back = delta @ W
            back_mag = d_mag @ np.abs(W)
            back_err = 2 * (W.shape[0] + 1) * u * back_mag + d_err @ np.abs(W)
            # act' from a stored a with error e: |d act'/d a| <= 2 (tanh), 1 (sigmoid).
            dv_err = 2 * errs[m - 1] if acts[m - 2] in ("tanh", "sigmoid") else 0 * dv
            delta = back * dv
            d_err = back_err * np.abs(dv) + np.abs(back) * dv_err + 2 * u * np.abs(delta)
            d_mag = back_mag * np.abs(dv) + back_mag * dv_err
    flat, bound = [], []
    for gW, gb, gW_err, gb_err in grads:
        flat += [gW.ravel() / total, gb / total]
        bound += [(gW_err.ravel() + 4 * u * np.abs(gW.ravel())) / total,
                  (gb_err + 4 * u * np.abs(gb)) / total]
    out["grad"] = np.concatenate(flat)
    out["grad_bound"] = np.concatenate(bound)
    if not net.bias:
        for (_, b_view) in zip(*net.unflatten(out["grad"])):
            b_view[...] = 0
    return out


def assert_within(got, ref, bound, what):
    """|got - ref| <= bound elementwise (NaN-free), naming the worst element."""
    got = np.asarray(got, np.float64)
    excess = np.abs(got - ref) - bound
    assert np.isfinite(got).all(), f"{what}: not finite"
    worst = int(np.argmax(excess))
    assert excess.flat[worst] <= 0, (
        f"{what}: element {np.unravel_index(worst, np.shape(got))} is {got.flat[worst]!r}, the "
        f"float64 reference {ref.flat[worst]!r}, off by {abs(got.flat[worst] - ref.flat[worst]):.3g} "
        f"where rounding allows {bound.flat[worst]:.3g}")
