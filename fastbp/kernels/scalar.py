"""Activations, their derivatives and per-output loss terms as plain scalar functions.

Written once and compiled for every target: ``numba.njit`` in ``loop.py`` and
``numba.cuda.jit(device=True)`` in ``cuda.py``. Each takes ``one``, a constant of
the working dtype, because a bare literal such as ``1 - a`` would promote float32
arithmetic to float64.

Softmax is not elementwise; its forward pass lives in the kernels. Its derivative
is only needed for softmax + mse, handled in the output-error kernels.
"""
import math

from fastbp.kernels.codes import ADAM, IDENTITY, RELU, RPROP, SIGMOID, TANH


def activate(code, z, one):
    """a = act(z) for the elementwise activations."""
    if code == SIGMOID:
        # Branch on the sign so exp never overflows.
        if z >= one - one:
            return one / (one + math.exp(-z))
        e = math.exp(z)
        return e / (one + e)
    if code == TANH:
        return math.tanh(z)
    if code == RELU:
        return z if z > one - one else one - one
    return z


def derivative(code, a, one):
    """act'(z) expressed through the stored activation a = act(z)."""
    if code == SIGMOID:
        return a * (one - a)
    if code == TANH:
        return one - a * a
    if code == RELU:
        return one if a > one - one else one - one
    return one


# Outputs are clamped to at least LOG_FLOOR before a log, so a saturated output
# costs a large finite amount (about 69) instead of infinity. Costs are summed in
# float64 in every backend, so this one is float64 too.
LOG_FLOOR = 1e-30


def log_clamped(p):
    """log(max(p, LOG_FLOOR)) in float64."""
    return math.log(max(float(p), LOG_FLOOR))


def optimizer_step(opt, w, g, s0, s1, lr, momentum, nesterov, step_size, beta1, beta2,
                   sqrt_bc2, eps, eta_minus, eta_plus, step_min, step_max, one):
    """One parameter's update from its gradient g (L2 already added); returns (w, s0, s1).

    SGD (torch.optim.SGD): s0 = velocity; v <- momentum * v + g; w <- w - lr * v, or with
        Nesterov w <- w - lr * (g + momentum * v); without momentum w <- w - lr * g.
    Adam (torch.optim.Adam): s0 = m, s1 = v; m <- beta1 m + (1 - beta1) g,
        v <- beta2 v + (1 - beta2) g^2, w <- w - step_size * m / (sqrt(v) / sqrt_bc2 + eps)
        with step_size = lr / (1 - beta1^t), sqrt_bc2 = sqrt(1 - beta2^t).
    RPROP (iRprop-, torch.optim.Rprop): s0 = previous gradient, s1 = step size; the step
        grows by eta_plus while the gradient keeps its sign and shrinks by eta_minus when it
        flips (then the gradient counts as 0: no move, no sign next time), clamped to
        [step_min, step_max]; w <- w - sign(g) * step.
    """
    zero = one - one
    if opt == ADAM:
        s0 = beta1 * s0 + (one - beta1) * g
        s1 = beta2 * s1 + (one - beta2) * g * g
        return w - step_size * s0 / (math.sqrt(s1) / sqrt_bc2 + eps), s0, s1
    if opt == RPROP:
        direction = g * s0
        if direction > zero:
            s1 = s1 * eta_plus
        elif direction < zero:
            s1 = s1 * eta_minus
            g = zero
        s1 = min(max(s1, step_min), step_max)
        if g > zero:
            w = w - s1
        elif g < zero:
            w = w + s1
        return w, g, s1
    if momentum != zero:  # SGD
        s0 = momentum * s0 + g
        g = g + momentum * s0 if nesterov else s0
    return w - lr * g, s0, s1
