"""exp, sigmoid and tanh that vectorize in float32 CPU loops, the libm functions elsewhere.

``math.exp`` and ``math.tanh`` compile to calls into libm, which LLVM never vectorizes
(llvmlite has no SVML), so a loop applying an activation runs one element at a time. In
float32 on the CPU, ``exp``, ``sigmoid`` and ``tanh`` below are straight-line arithmetic
instead -- a clamp, a polynomial, an integer bit trick -- and a loop over them becomes
SIMD code (8 or 16 lanes). Everywhere else (float64, the CUDA target, the CUDA simulator's
plain Python) they are libm's.

Accuracy (float32, 4M points, against float64): exp 1.01 ulp on [-87.3, 88.3] (libm 0.50),
sigmoid 2.46 ulp on [-30, 30] (the branch-on-sign libm form: 2.40), tanh 4.75 ulp on
[-10, 10] (libm 2.08): about 1e-7 relative, three orders of magnitude inside the float32
tolerance the backends are held to (rtol 2e-4). Outside the clamps exp gives 1.2e-38 for
0 and 2.4e38 for inf; an infinite pre-activation (a float32 sum that overflowed) gives
sigmoid 0 or 1 and tanh -1 or 1, as libm does; a NaN input stays NaN, so diverged
training is still detected.

Like every kernel they are compiled without "reassoc" (fastbp._config): with it, LLVM
may fold the two-constant range reduction x - n*C1 - n*C2 into x - n*(C1 + C2) and lose
about 20 ulp.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from fastbp._config import JIT


@intrinsic
def _bits_as_float32(typingctx, x):
    """The low 32 bits of an integer reinterpreted as a float32 (LLVM trunc + bitcast:
    free, and it vectorizes). Numba widens int32 arithmetic to int64, so any integer."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if x.bitwidth > 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())
    return types.float32(x), codegen


_f32 = np.float32
_EXP_HI = _f32(88.3762626647949)
_EXP_LO = _f32(-87.3365478515625)   # exp(_EXP_LO) is the smallest normal float32
_LOG2E = _f32(1.44269504088896341)
_LN2_HI = _f32(0.693359375)         # ln 2 = _LN2_HI + _LN2_LO (Cody-Waite), _LN2_HI exact
_LN2_LO = _f32(-2.12194440e-4)
# Cephes expf: minimax polynomial for exp on [-ln2/2, ln2/2].
_P0, _P1, _P2 = _f32(1.9875691500e-4), _f32(1.3981999507e-3), _f32(8.3334519073e-3)
_P3, _P4, _P5 = _f32(4.1665795894e-2), _f32(1.6666665459e-1), _f32(5.0000001201e-1)
_HALF, _ONE = _f32(0.5), _f32(1.0)


@njit(**JIT)
def exp32(x0):
    """exp(x0) for a float32: 2^n * p(r), x0 = n ln 2 + r, |r| <= ln2 / 2."""
    x = min(max(x0, _EXP_LO), _EXP_HI)
    n = np.floor(madd(x, _LOG2E, _HALF))
    x = madd(-n, _LN2_HI, x)
    x = madd(-n, _LN2_LO, x)
    z = x * x
    y = _P0
    y = madd(y, x, _P1)
    y = madd(y, x, _P2)
    y = madd(y, x, _P3)
    y = madd(y, x, _P4)
    y = madd(y, x, _P5)
    y = madd(y, z, x) + _ONE
    e = y * _bits_as_float32((np.int32(n) + np.int32(127)) << np.int32(23))
    # A NaN input stays NaN, which the clamp above would have hidden (a select: it
    # vectorizes, and unlike adding x0 - x0 it leaves +-inf to the clamp).
    return e if x0 == x0 else x0


# Eigen's generic_fast_tanh_float: a 13/6 rational approximation on [-7.9, 7.9], beyond
# which tanh is +-1 in float32; below 4e-4 tanh(x) = x in float32.
_TANH_CLAMP, _TANH_TINY = _f32(7.90531110763549805), _f32(0.0004)
_A1, _A3, _A5 = _f32(4.89352455891786e-03), _f32(6.37261928875436e-04), _f32(1.48572235717979e-05)
_A7, _A9 = _f32(5.12229709037114e-08), _f32(-8.60467152213735e-11)
_A11, _A13 = _f32(2.00018790482477e-13), _f32(-2.76076847742355e-16)
_B0, _B2 = _f32(4.89352518554385e-03), _f32(2.26843463243900e-03)
_B4, _B6 = _f32(1.18534705686654e-04), _f32(1.19825839466702e-06)


@njit(**JIT)
def tanh32(x0):
    """tanh(x0) for a float32."""
    x = min(max(x0, -_TANH_CLAMP), _TANH_CLAMP)
    x2 = x * x
    p = madd(x2, _A13, _A11)
    p = madd(x2, p, _A9)
    p = madd(x2, p, _A7)
    p = madd(x2, p, _A5)
    p = madd(x2, p, _A3)
    p = madd(x2, p, _A1)
    q = madd(x2, _B6, _B4)
    q = madd(x2, q, _B2)
    q = madd(x2, q, _B0)
    r = x * p / q
    # NaN stays NaN; +-inf (an overflowed pre-activation) gives +-1 through the clamp, as
    # libm's tanh does (adding x0 - x0 would have made it NaN).
    return r if abs(x0) >= _TANH_TINY else x0


# -- a fused multiply-add where the source asks for one -------------------------------------

def madd(a, b, c):
    """a * b + c, fused into one rounding on the CPU (llvm.fmuladd: one FMA instruction
    wherever the CPU has FMA) -- in every compiled context alike, because the source asks
    for it here rather than leaving it to fast-math contraction (fastbp._config). Two
    roundings in NumPy (the vectorized reference), the GPU's own contraction under CUDA."""
    return a * b + c


@intrinsic
def _fmuladd(typingctx, a, b, c):
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        t = context.get_value_type(a)
        name = f"llvm.fmuladd.f{a.bitwidth}"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t, t, t]), name)
        return builder.call(fn, args)
    return a(a, b, c), codegen


@overload(madd, target="cpu")
def _madd_cpu(a, b, c):
    if isinstance(a, types.Float) and a == b == c:
        return lambda a, b, c: _fmuladd(a, b, c)
    return lambda a, b, c: a * b + c


@overload(madd, target="cuda")
def _madd_cuda(a, b, c):
    return lambda a, b, c: a * b + c


# -- what kernels call: dispatched on the target and the dtype ------------------------------

def exp(x):
    """exp(x): exp32 for float32 on the CPU, libm otherwise."""
    return math.exp(x)


def sigmoid(z, one):
    """1 / (1 + exp(-z)); ``one`` is 1 in z's dtype."""
    # Branch on the sign so exp never overflows.
    if z >= one - one:
        return one / (one + math.exp(-z))
    e = math.exp(z)
    return e / (one + e)


def tanh(x):
    """tanh(x): tanh32 for float32 on the CPU, libm otherwise."""
    return math.tanh(x)


def _float32_or_libm(float32_form, libm_form):
    """An overload typer: float32_form for a float32 argument, libm_form otherwise."""
    def typer(x):
        if x == types.float32:
            return lambda x: float32_form(x)
        return lambda x: libm_form(x)
    return typer


overload(exp, target="cpu")(_float32_or_libm(exp32, math.exp))


@overload(sigmoid, target="cpu")
def _sigmoid_cpu(z, one):
    if z == types.float32:
        return lambda z, one: one / (one + exp32(-z))  # exp32 never overflows: no branch
    return sigmoid


overload(tanh, target="cpu")(_float32_or_libm(tanh32, math.tanh))


@overload(exp, target="cuda")
def _exp_cuda(x):
    return lambda x: math.exp(x)


@overload(sigmoid, target="cuda")
def _sigmoid_cuda(z, one):
    return sigmoid


@overload(tanh, target="cuda")
def _tanh_cuda(x):
    return lambda x: math.tanh(x)
