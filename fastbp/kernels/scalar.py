"""The row-level mathematics, written once for every target.

Everything here is ``register_jitable``: it compiles into whatever calls it -- the Numba
CPU kernels (``loop*.py``), the numba.cuda kernels (``cuda*.py``, also under the CUDA
simulator) -- and inherits that caller's compilation flags. Rows are addressed as
(flat array, offset), the one form that suits a CPU kernel's flat buffers and a GPU
thread's global or shared memory alike. Each function takes ``one``, a constant of the
working dtype, because a bare literal such as ``1 - a`` would promote float32
arithmetic to float64.

The per-parameter pieces (``penalized_gradient``, ``sgd_step``, ``adam_step``) are plain
arithmetic, so the vectorized backend applies them to whole NumPy arrays as well.
"""
import math
from typing import NamedTuple

import numpy as np
from numba.extending import overload, register_jitable

from fastbp.kernels import vmath
from fastbp.kernels.codes import (ADAM, CROSS_ENTROPY, H_BETA1, H_BETA2, H_EPS, H_ETA_MINUS,
                                  H_ETA_PLUS, H_L2, H_LR, H_MOMENTUM, H_NESTEROV, H_STEP_MAX,
                                  H_STEP_MIN, RELU, RPROP, SIGMOID, SOFTMAX, TANH)

# -- activations -------------------------------------------------------------------------


@register_jitable
def activate(code, z, one):
    """a = act(z) for the elementwise activations (softmax: ``softmax_row``); the float32
    CPU forms of sigmoid and tanh vectorize (``vmath``)."""
    if code == SIGMOID:
        return vmath.sigmoid(z, one)
    if code == TANH:
        return vmath.tanh(z)
    if code == RELU:
        return z if z > one - one else one - one
    return z


@register_jitable
def derivative(code, a, one):
    """act'(z) expressed through the stored activation a = act(z)."""
    if code == SIGMOID:
        return a * (one - a)
    if code == TANH:
        return one - a * a
    if code == RELU:
        return one if a > one - one else one - one
    return one


def softmax_row(a, off, n, one):
    """a_i = exp(z_i - max z) / sum_k exp(z_k - max z), in place on a[off:off + n]. Where
    max z is infinite (a pre-activation that overflowed), its limit: the units at max z
    share the probability equally (z - max z would be inf - inf, NaN).

    Two forms of the same numbers (the same operations in the same order): this one, which
    sums the exponentials as it makes them, for the GPU (a second pass there costs
    registers: the fused epoch's rise from 161 to 164 in float64), and the CPU's, whose
    exponentials have a loop of their own on unsigned indices so that it vectorizes (with
    the sum in the loop, or signed indices, LLVM kept exp scalar: about 6 ns an output)."""
    top = _softmax_top(a, off, n, one)
    if math.isinf(top):
        return
    total = one - one
    for i in range(n):
        e = vmath.exp(a[off + i] - top)
        a[off + i] = e
        total += e
    inv = one / total
    for i in range(n):
        a[off + i] *= inv


@overload(softmax_row, target="cpu")
def _softmax_row_cpu(a, off, n, one):
    def impl(a, off, n, one):
        top = _softmax_top(a, off, n, one)
        if math.isinf(top):
            return
        start, end = np.uint64(off), np.uint64(off) + np.uint64(n)
        for i in range(start, end):
            a[i] = vmath.exp(a[i] - top)
        total = one - one
        for i in range(start, end):
            total += a[i]
        inv = one / total
        for i in range(start, end):
            a[i] *= inv
    return impl


@overload(softmax_row, target="cuda")
def _softmax_row_cuda(a, off, n, one):
    return softmax_row


@register_jitable
def _softmax_top(a, off, n, one):
    """max z of the row at a[off:off + n]; where it is infinite, the row is set to its
    limit (see softmax_row)."""
    top = a[off]
    for i in range(1, n):
        top = max(top, a[off + i])
    if math.isinf(top):
        count = one - one
        for i in range(n):
            a[off + i] = one if a[off + i] == top else one - one
            count += a[off + i]
        for i in range(n):
            a[off + i] /= count
    return top


@register_jitable
def times_derivative(d, d_off, a, a_off, count, code, one):
    """d[d_off + k] *= act'(z) for k < count, act' through the stored activations at
    a[a_off + k]: one loop per activation (see activate_rows), so that it vectorizes."""
    zero = one - one
    d_off, a_off, count = np.uint64(d_off), np.uint64(a_off), np.uint64(count)  # (see above)
    if code == SIGMOID:
        for k in range(count):
            x = a[a_off + k]
            d[d_off + k] *= x * (one - x)
    elif code == TANH:
        for k in range(count):
            x = a[a_off + k]
            d[d_off + k] *= one - x * x
    elif code == RELU:  # times 1 or 0, as ``derivative``: a NaN delta stays NaN
        for k in range(count):
            d[d_off + k] *= one if a[a_off + k] > zero else zero


@register_jitable
def activate_row(a, off, n, code, one):
    """a = act(z) in place on one sample's row a[off:off + n] (softmax included)."""
    activate_rows(a, off, 1, n, code, one)


@register_jitable
def activate_rows(a, off, rows, n, code, one):
    """activate_row on ``rows`` consecutive rows of n at a[off:]: for an elementwise
    activation one flat loop (it vectorizes, and costs one call per block of samples
    rather than one per sample)."""
    # One loop per activation: with the choice inside the loop LLVM would keep a branch
    # per element (or compute every activation and select), and the loop would not
    # vectorize; unsigned indices, as a signed one gets a negative-index check that
    # keeps it scalar too.
    off, end = np.uint64(off), np.uint64(off) + np.uint64(rows) * np.uint64(n)
    if code == SOFTMAX:
        for s in range(np.uint64(rows)):
            softmax_row(a, off + s * np.uint64(n), n, one)
    elif code == SIGMOID:
        for i in range(off, end):
            a[i] = vmath.sigmoid(a[i], one)
    elif code == TANH:
        for i in range(off, end):
            a[i] = vmath.tanh(a[i])
    elif code == RELU:
        for i in range(off, end):
            a[i] = a[i] if a[i] > one - one else one - one


# -- costs and the output error ------------------------------------------------------------

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
def row_cost(a, off, Y, r, n, binary, loss):
    """C(a[L], y) of one sample in float64: a[L] at a[off:off + n], y = Y[r]."""
    c = 0.0
    for i in range(n):
        c += cost_term(Y[r, i], a[off + i], binary, loss)
    return c


@register_jitable
def output_delta_row(d, d_off, a, a_off, Y, r, n, code, loss, one):
    """delta[L] = dC/da[L] (*) act_L'(z[L]) of one sample, into d[d_off:d_off + n], from
    a[L] at a[a_off:] and y = Y[r].

    Softmax + cross-entropy: a * sum(y) - y, which is a - y for targets that sum to 1
    (one-hot labels) and stays exact for targets that do not. Sigmoid + binary
    cross-entropy: a - y. mse: (a - y) (*) act', through the softmax Jacobian for a
    softmax output.
    """
    if loss == CROSS_ENTROPY and code == SOFTMAX:
        total = one - one
        for i in range(n):
            total += Y[r, i]
        for i in range(n):
            d[d_off + i] = a[a_off + i] * total - Y[r, i]
        return
    if code != SOFTMAX:
        for i in range(n):
            d[d_off + i] = output_delta_term(a[a_off + i], Y[r, i], code, loss, one)
        return
    # Softmax + mse: delta_i = a_i * (g_i - sum_k g_k a_k), g = a - y.
    for i in range(n):
        d[d_off + i] = a[a_off + i] - Y[r, i]
    dot = one - one
    for i in range(n):
        dot += d[d_off + i] * a[a_off + i]
    for i in range(n):
        d[d_off + i] = a[a_off + i] * (d[d_off + i] - dot)


@register_jitable
def output_delta_term(a, y, code, loss, one):
    """One output's delta for an elementwise output activation (not softmax): a - y with
    cross-entropy (sigmoid + binary cross-entropy), (a - y) act'(a) with mse. Small enough
    to inline: a kernel that calls it per element pays no call per sample."""
    e = a - y
    return e if loss == CROSS_ENTROPY else e * derivative(code, a, one)


# -- the update, per parameter ----------------------------------------------------------------


@register_jitable
def penalized_gradient(g_sum, w, scale, l2):
    """The gradient of a weight under the objective with L2: scale * g_sum + l2 * w
    (scale = 1 / batch size), with l2 * w fused in. Biases are not penalized: their
    gradient is scale * g_sum. (With l2 = 0 and scale = 1 it is g_sum exactly.)"""
    return vmath.madd(l2, w, scale * g_sum)


class Step(NamedTuple):
    """The scalars of the t-th update (t from 1): the optimizer's hyperparameters, with
    Adam's bias corrections folded in. ``step_constants`` makes them in float64 from the
    hyperparameter array, ``in_dtype`` in the working dtype. Adam's 1 - beta is computed
    in float64 and then rounded (in float32, 1 - float32(0.999) is 1.3e-5 off 0.001: a
    float32 fit would follow another Adam than its float64 twin)."""
    lr: float          # learning rate (RPROP: unused, its steps are per connection)
    momentum: float    # SGD
    nesterov: bool
    l2: float          # L2 penalty on the weights
    step_size: float   # Adam: lr / (1 - beta1^t)
    beta1: float
    beta2: float
    decay1: float      # 1 - beta1
    decay2: float      # 1 - beta2
    sqrt_bc2: float    # sqrt(1 - beta2^t)
    eps: float
    eta_minus: float   # RPROP
    eta_plus: float
    step_min: float
    step_max: float


@register_jitable
def step_constants(hyper, t, adam=True):
    """Step of the t-th update, in float64, from the hyperparameter array (slots H_* of
    fastbp.kernels.codes). Adam's bias corrections (two powers, a few dozen cycles each:
    more than a tiny network's whole update) only where ``adam``; else 1."""
    bc1 = 1.0 - hyper[H_BETA1] ** t if adam else 1.0
    bc2 = 1.0 - hyper[H_BETA2] ** t if adam else 1.0
    return Step(hyper[H_LR], hyper[H_MOMENTUM], hyper[H_NESTEROV] != 0, hyper[H_L2],
                hyper[H_LR] / bc1, hyper[H_BETA1], hyper[H_BETA2], 1.0 - hyper[H_BETA1],
                1.0 - hyper[H_BETA2], math.sqrt(bc2), hyper[H_EPS], hyper[H_ETA_MINUS],
                hyper[H_ETA_PLUS], hyper[H_STEP_MIN], hyper[H_STEP_MAX])


@register_jitable
def in_dtype(k, dt):
    """Step k with every number converted by dt (the working dtype's type)."""
    return Step(dt(k.lr), dt(k.momentum), k.nesterov, dt(k.l2), dt(k.step_size), dt(k.beta1),
                dt(k.beta2), dt(k.decay1), dt(k.decay2), dt(k.sqrt_bc2), dt(k.eps),
                dt(k.eta_minus), dt(k.eta_plus), dt(k.step_min), dt(k.step_max))


@register_jitable
def sgd_step(w, g, v, lr, momentum, nesterov, one):
    """SGD as torch.optim.SGD; returns (w, v). v <- momentum * v + g; w <- w - lr * v, or
    with Nesterov w <- w - lr * (g + momentum * v); without momentum w <- w - lr * g."""
    if momentum != one - one:
        v = vmath.madd(momentum, v, g)
        g = vmath.madd(momentum, v, g) if nesterov else v
    return vmath.madd(-lr, g, w), v


def sqrt(x):
    """np.sqrt for the vectorized backend's arrays; math.sqrt in compiled code (numba.cuda
    compiles no NumPy ufunc for a real GPU)."""
    return np.sqrt(x)


@overload(sqrt)
def _sqrt_compiled(x):
    return lambda x: math.sqrt(x)


@register_jitable
def adam_step(w, g, m, v, k):
    """Adam as torch.optim.Adam; returns (w, m, v). m <- beta1 m + (1 - beta1) g,
    v <- beta2 v + (1 - beta2) g^2, w <- w - step_size * m / (sqrt(v) / sqrt_bc2 + eps)
    with k (a Step) holding step_size = lr / (1 - beta1^t), sqrt_bc2 = sqrt(1 - beta2^t)."""
    m = vmath.madd(k.beta1, m, k.decay1 * g)
    v = vmath.madd(k.beta2, v, k.decay2 * g * g)
    return vmath.madd(-k.step_size, m / (sqrt(v) / k.sqrt_bc2 + k.eps), w), m, v


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


@register_jitable
def optimizer_step(opt, w, g, s0, s1, k, one):
    """One parameter's update from its gradient g (L2 already added) with the constants k
    (a Step in the working dtype); returns (w, s0, s1), the optimizer state being SGD:
    (velocity, unused); Adam: (m, v); RPROP: (previous gradient, step size)."""
    if opt == ADAM:
        return adam_step(w, g, s0, s1, k)
    if opt == RPROP:
        return rprop_step(w, g, s0, s1, k.eta_minus, k.eta_plus, k.step_min, k.step_max, one)
    w, s0 = sgd_step(w, g, s0, k.lr, k.momentum, k.nesterov, one)
    return w, s0, s1
