"""Activations, their derivatives and per-output loss terms as plain scalar functions.

Written once and compiled for every target: ``numba.njit`` in ``loop.py`` and
``numba.cuda.jit(device=True)`` in ``cuda.py``. Each takes ``one``, a constant of
the working dtype, because a bare literal such as ``1 - a`` would promote float32
arithmetic to float64.

Softmax is not elementwise; its forward pass lives in the kernels. Its derivative
is only needed for softmax + mse, handled in the output-error kernels.
"""
import math

from fastbp.kernels.codes import IDENTITY, RELU, SIGMOID, TANH


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
