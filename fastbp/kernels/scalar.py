"""Activations, their derivatives and per-output loss terms as plain scalar functions.

Written once and compiled for every target: ``numba.njit`` in ``loop.py`` and
``numba.cuda.jit(device=True)`` in ``cuda.py``. Each takes ``one``, a constant of
the working dtype, because a bare literal such as ``1 - a`` would promote float32
arithmetic to float64.

The optimizer steps are register_jitable, so optimizer_step can call them on every
target. Softmax is not elementwise; its forward pass lives in the kernels. Its derivative
is only needed for softmax + mse, handled in the output-error kernels.
"""
import math

from numba.extending import register_jitable

from fastbp.kernels.codes import ADAM, CROSS_ENTROPY, RELU, RPROP, SIGMOID, TANH


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


@register_jitable
def log_clamped(p):
    """log(max(p, LOG_FLOOR)) in float64."""
    return math.log(max(float(p), LOG_FLOOR))


@register_jitable
def cost_term(y, a, binary, loss):
    """One output's share of the per-sample cost, in float64: 0.5 * (y - a)^2 for mse;
    -y log a for cross-entropy, and also -(1 - y) log(1 - a) for a sigmoid output."""
    t, p = float(y), float(a)
    if loss != CROSS_ENTROPY:
        return 0.5 * (t - p) * (t - p)
    c = 0.0
    if t != 0.0:
        c -= t * log_clamped(p)
    if binary and t != 1.0:
        c -= (1.0 - t) * log_clamped(1.0 - p)
    return c


@register_jitable
def sgd_step(w, g, v, lr, momentum, nesterov, one):
    """SGD as torch.optim.SGD; returns (w, v). v <- momentum * v + g; w <- w - lr * v, or
    with Nesterov w <- w - lr * (g + momentum * v); without momentum w <- w - lr * g."""
    if momentum != one - one:
        v = momentum * v + g
        g = g + momentum * v if nesterov else v
    return w - lr * g, v


@register_jitable
def adam_step(w, g, m, v, step_size, beta1, beta2, sqrt_bc2, eps, one):
    """Adam as torch.optim.Adam; returns (w, m, v). m <- beta1 m + (1 - beta1) g,
    v <- beta2 v + (1 - beta2) g^2, w <- w - step_size * m / (sqrt(v) / sqrt_bc2 + eps)
    with step_size = lr / (1 - beta1^t), sqrt_bc2 = sqrt(1 - beta2^t)."""
    m = beta1 * m + (one - beta1) * g
    v = beta2 * v + (one - beta2) * g * g
    return w - step_size * m / (math.sqrt(v) / sqrt_bc2 + eps), m, v


@register_jitable
def rprop_step(w, g, prev, step, eta_minus, eta_plus, step_min, step_max, one):
    """iRprop- as torch.optim.Rprop; returns (w, g', step). The step grows by eta_plus
    while the gradient keeps its sign and shrinks by eta_minus when it flips (the gradient
    then counts as 0: no move, and no sign to compare with next time), clamped to
    [step_min, step_max]; w <- w - sign(g') * step. g' is the next call's prev."""
    zero = one - one
    direction = g * prev
    if direction > zero:
        step = step * eta_plus
    elif direction < zero:
        step = step * eta_minus
        g = zero
    step = min(max(step, step_min), step_max)
    if g > zero:
        w = w - step
    elif g < zero:
        w = w + step
    return w, g, step


def optimizer_step(opt, w, g, s0, s1, lr, momentum, nesterov, step_size, beta1, beta2,
                   sqrt_bc2, eps, eta_minus, eta_plus, step_min, step_max, one):
    """One parameter's update from its gradient g (L2 already added); returns (w, s0, s1),
    the optimizer state being SGD: (velocity, unused); Adam: (m, v); RPROP: (previous
    gradient, step size)."""
    if opt == ADAM:
        return adam_step(w, g, s0, s1, step_size, beta1, beta2, sqrt_bc2, eps, one)
    if opt == RPROP:
        return rprop_step(w, g, s0, s1, eta_minus, eta_plus, step_min, step_max, one)
    w, s0 = sgd_step(w, g, s0, lr, momentum, nesterov, one)
    return w, s0, s1
