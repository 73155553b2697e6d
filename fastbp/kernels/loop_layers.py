"""Per-layer CPU kernels for a batch: forward, delta, outer-product gradient, update.

Each kernel sits beside its plain form -- the equation of DESIGN.md section 1 as three
nested loops -- and equals it bit for bit: the blocked forms run the register tiles of
``loop_tiles``, which vectorize across independent outputs and take every sum in the
plain loop's order, and the packed products of ``loop_gemm`` (large batches) sum the same
way. So which path a layer takes -- plain, tiled, packed, serial or on threads -- never
changes a number.

The kernels index the flat buffers of the backend contract through offsets -- no array
views, whose slicing and reference counting cost about 45 ns each and, in a small batch,
more than the arithmetic -- and the offsets are unsigned, so Numba adds no
negative-index wraparound, which would keep the loops from vectorizing:

    W       W[m] (n_out, n_in) at params[w:], row-major; b[m] right after it
    WT      W[m]^T (n_in, n_out) at WT[wt:], made by the forward pass (loop_tiles.transpose)
    a_in    a[m-1] (n, n_in) at A[a_in:], the activations feeding the layer
    z       a[m] (n, n_out) at A[z:] (z before the activation is applied)
    d       delta[m] (n, n_out) at Dl[d:]

Threads (``*_threads``) split a layer's work where writes are disjoint -- samples in the
forward and delta kernels, rows of W in the gradient -- so every number is computed in
the same order as with one thread and results are bit-identical.
"""
import math

import numba
import numpy as np
from numba import njit, types
from numba.extending import overload

from fastbp._config import JIT, JIT_NO_NRT
from fastbp.kernels import loop_gemm, loop_tiles, scalar, vmath

# Samples per cache block, whole tiles of rows: a block of activations (SAMPLE_BLOCK rows
# of up to a few thousand floats) stays in L2 while W^T streams through L1, and is
# activated while it is there.
SAMPLE_BLOCK = 4 * loop_tiles.R
# Below this many multiply-adds per layer a thread team costs more than it saves, and
# the serial kernels run.
PARALLEL_MIN_WORK = 1 << 18

_u = np.uint64


@njit(**JIT_NO_NRT)
def weight_offset(sizes, m):
    """Where W[m] starts in params (or grad); b[m] follows it."""
    p = 0
    for k in range(1, m):
        p += sizes[k] * (sizes[k - 1] + 1)
    return p


@njit(**JIT_NO_NRT)
def block_offset(sizes, m, n):
    """Where block m, (n, D[m]), of a layer-major workspace for n samples starts."""
    off = 0
    for k in range(m):
        off += sizes[k]
    return off * n


# -- forward: z_si = sum_j W_ij * a_in_sj + b_i,  a = act(z) ----------------------------------

@njit(**JIT_NO_NRT)
def _forward_layer_plain(A, z, params, w, a_in, n_in, n_out, code, one, lo, hi):
    """z_si = sum_j W_ij * a_in_sj + b_i, then a = act(z) in place, for samples lo..hi-1."""
    b = w + n_out * n_in
    for s in range(lo, hi):
        for i in range(n_out):
            acc = params[b + i]
            for j in range(n_in):
                acc = vmath.madd(params[w + i * n_in + j], A[a_in + s * n_in + j], acc)
            A[z + s * n_out + i] = acc
        scalar.activate_row(A, z + s * n_out, n_out, code, one)


@njit(**JIT_NO_NRT)
def _forward_layer(A, z, params, w, WT, wt, a_in, n_in, n_out, code, one, lo, hi):
    """_forward_layer_plain through the tiles of loop_tiles.forward_rows, W^T at WT[wt:]
    (loop_tiles.transpose): the same sums in the same order, a block of samples at a
    time."""
    b = w + n_out * n_in
    for s0 in range(lo, hi, SAMPLE_BLOCK):
        s1 = min(s0 + SAMPLE_BLOCK, hi)
        loop_tiles.forward_rows(A, z, params, b, WT, wt, a_in, n_in, n_out, s0, s1)
        scalar.activate_rows(A, z + s0 * n_out, s1 - s0, n_out, code, one)


# -- hidden delta: d_sj = act'(a_sj) * sum_i W_next_ij * d_next_si -------------------------------
#     d (n, n_here) at Dl[d:]; W_next (n_next, n_here) at params[w_next:], as in the forward
#     pass; d_next (n, n_next) at Dl[d_next:]; a (n, n_here), this layer's activations, at A[a:].

@njit(**JIT_NO_NRT)
def _delta_layer_plain(Dl, d, A, a, params, w_next, d_next, n_here, n_next, code, one, lo, hi):
    """d_sj = act'(a_sj) * sum_i W_next_ij * d_next_si, for samples lo..hi-1."""
    for s in range(lo, hi):
        for j in range(n_here):
            acc = one - one
            for i in range(n_next):
                acc = vmath.madd(params[w_next + i * n_here + j], Dl[d_next + s * n_next + i],
                                 acc)
            Dl[d + s * n_here + j] = acc * scalar.derivative(code, A[a + s * n_here + j], one)


@njit(**JIT_NO_NRT)
def _delta_layer(Dl, d, A, a, params, w_next, d_next, n_here, n_next, code, one, lo, hi):
    """_delta_layer_plain through the tiles of loop_tiles.delta_rows: the same sums in the
    same order, a block of samples at a time."""
    for s0 in range(lo, hi, SAMPLE_BLOCK):
        s1 = min(s0 + SAMPLE_BLOCK, hi)
        loop_tiles.delta_rows(Dl, d, params, w_next, d_next, n_here, n_next, s0, s1)
        _derivative_block(Dl, d, A, a, s0 * n_here, s1 * n_here, code, one)


@njit(**JIT_NO_NRT)
def _derivative_block(Dl, d, A, a, lo, hi, code, one):
    """Dl[d + k] *= act'(A[a + k]) for k = lo..hi-1."""
    scalar.times_derivative(Dl, d + lo, A, a + lo, hi - lo, code, one)


# -- gradient: gW_ij += sum_s d_si * a_in_sj,  gb_i += sum_s d_si ---------------------------------
#     gW (n_out, n_in) at grad[w:] and gb (n_out,) after it, in/out; d (n, n_out) at Dl[d:];
#     a_in (n, n_in) at A[a_in:].

@njit(**JIT_NO_NRT)
def _grad_layer_plain(grad, w, Dl, d, A, a_in, n, n_in, n_out, lo, hi):
    """gW_ij += sum_s d_si * a_in_sj,  gb_i += sum_s d_si, for rows i = lo..hi-1."""
    b = w + n_out * n_in
    for s in range(n):
        for i in range(lo, hi):
            for j in range(n_in):
                k = w + i * n_in + j
                grad[k] = vmath.madd(Dl[d + s * n_out + i], A[a_in + s * n_in + j], grad[k])
            grad[b + i] += Dl[d + s * n_out + i]


@njit(**JIT_NO_NRT)
def _grad_layer(grad, w, Dl, d, A, a_in, n, n_in, n_out, lo, hi):
    """_grad_layer_plain through the tiles of loop_tiles.grad_rows, then the bias sums:
    every gradient summed over the samples in order, as the plain form sums it."""
    loop_tiles.grad_rows(grad, w, Dl, d, A, a_in, n, n_in, n_out, lo, hi)
    b = _u(w) + _u(n_out) * _u(n_in)
    for s in range(_u(n)):
        row = _u(d) + s * _u(n_out)
        for i in range(_u(lo), _u(hi)):
            grad[b + i] += Dl[row + i]


# -- update: w <- optimizer step from g = scale * gW + l2 * W (biases: scale * gb) -----------------

@njit(**JIT_NO_NRT)
def update_layer(params, S0, S1, grad, w, n_w, n_b, scale, opt, k, use_bias):
    """W, b <- scalar.optimizer_step from the penalized gradient with the constants k (a
    scalar.Step in the working dtype): the layer's n_w weights at [w, w + n_w) of params,
    grad and the optimizer state rows S0, S1, its n_b biases right after them (see
    ``loop.update``)."""
    one = params.dtype.type(1)
    w, n_w, n_b = _u(w), _u(n_w), _u(n_b)
    for p in range(w, w + n_w):
        params[p], S0[p], S1[p] = scalar.optimizer_step(
            opt, params[p], scalar.penalized_gradient(grad[p], params[p], scale, k.l2), S0[p],
            S1[p], k, one)
    if use_bias:
        for p in range(w + n_w, w + n_w + n_b):
            params[p], S0[p], S1[p] = scalar.optimizer_step(opt, params[p], scale * grad[p],
                                                            S0[p], S1[p], k, one)


# -- threads ------------------------------------------------------------------------------------

@njit(**JIT_NO_NRT)
def threads_pay(n, n_in, n_out):
    """Whether a layer of n_in x n_out weights over n samples is worth a thread team. The
    thread count is not consulted: reading it from compiled code would make every caller
    uncacheable. With one thread the threaded kernels run serially."""
    return n * n_in * n_out >= PARALLEL_MIN_WORK


@njit(parallel=True, **JIT)
def _forward_layer_threads(A, z, params, w, WT, wt, a_in, n_in, n_out, code, one, n):
    for k in numba.prange((n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        _forward_layer(A, z, params, w, WT, wt, a_in, n_in, n_out, code, one, k * SAMPLE_BLOCK,
                       min((k + 1) * SAMPLE_BLOCK, n))


@njit(parallel=True, **JIT)
def _delta_layer_threads(Dl, d, A, a, params, w_next, d_next, n_here, n_next, code, one, n):
    for k in numba.prange((n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        _delta_layer(Dl, d, A, a, params, w_next, d_next, n_here, n_next, code, one,
                     k * SAMPLE_BLOCK, min((k + 1) * SAMPLE_BLOCK, n))


@njit(parallel=True, **JIT)
def _grad_layer_threads(grad, w, Dl, d, A, a_in, n, n_in, n_out):
    rows = loop_tiles.R * max(1, n_out // (16 * loop_tiles.R))  # ~16 chunks of whole tiles
    for k in numba.prange((n_out + rows - 1) // rows):
        _grad_layer(grad, w, Dl, d, A, a_in, n, n_in, n_out, k * rows,
                    min((k + 1) * rows, n_out))


# -- all layers: serial, or on threads where they pay --------------------------------------
# The passes below take a ``tag``: None for the serial kernels, an array (loop.threads_tag) for
# the threaded ones. They are overloads chosen by the tag's type when the caller compiles,
# so a run that never uses threads never compiles the parallel kernels (about a third of
# the cold start), while every caller is written once.

def forward_pass(tag, A, params, WT, n, sizes, acts, work):
    """z[m] = W[m] a[m-1] + b[m], a[m] = act_m(z[m]) for m = 1..L (see loop.forward); WT
    (>= number of weights) is a workspace for each layer's W^T; work from
    loop_gemm.work_for (None: no gemm compiled), for the layers where gemm pays."""
    raise NotImplementedError("compiled code only")


def delta_pass(tag, Dl, A, params, n, sizes, acts, work):
    """delta[m] = act_m' (*) W[m+1]^T delta[m+1] for m = L-1..1 (see loop.hidden_deltas)."""
    raise NotImplementedError("compiled code only")


def grad_pass(tag, grad, Dl, A, n, sizes, work):
    """grad += the summed outer products, every layer (see loop.accumulate_gradients)."""
    raise NotImplementedError("compiled code only")


def _branches(tag, work):
    """Which branches a pass compiles, from its argument types: the threaded one where tag
    is not None, the gemm one where work is not None (else those branches are left out)."""
    return not isinstance(tag, types.NoneType), not isinstance(work, types.NoneType)


@overload(forward_pass, target="cpu", jit_options=JIT_NO_NRT)
def _forward_pass(tag, A, params, WT, n, sizes, acts, work):
    threaded, gemm = _branches(tag, work)

    def impl(tag, A, params, WT, n, sizes, acts, work):
        one = params.dtype.type(1)
        w, z = np.int64(0), np.int64(0)  # not Literal[int](0): one specialization
        for m in range(1, sizes.shape[0]):
            n_in, n_out = sizes[m - 1], sizes[m]
            a_in, z = z, z + n * n_in
            b = w + n_out * n_in
            if gemm and loop_gemm.pays(n, n_out, n_in):
                # z = b, then z += a_in W^T, summed as the tiles sum; then a = act(z).
                _bias_rows(A, z, params, b, n, n_out)
                loop_gemm.gemm_if_pays(work, tag, A, z, A, a_in, False, params, w, True, n,
                                       n_out, n_in, True)
                scalar.activate_rows(A, z, n, n_out, acts[m - 1], one)
            else:
                loop_tiles.transpose(WT, w, params, w, n_out, n_in)  # W^T where W is
                if threaded and threads_pay(n, n_in, n_out):
                    _forward_layer_threads(A, z, params, w, WT, w, a_in, n_in, n_out,
                                           acts[m - 1], one, n)
                else:
                    _forward_layer(A, z, params, w, WT, w, a_in, n_in, n_out, acts[m - 1],
                                   one, 0, n)
            w = b + n_out
    return impl


@overload(delta_pass, target="cpu", jit_options=JIT_NO_NRT)
def _delta_pass(tag, Dl, A, params, n, sizes, acts, work):
    threaded, gemm = _branches(tag, work)

    def impl(tag, Dl, A, params, n, sizes, acts, work):
        one = params.dtype.type(1)
        for m in range(sizes.shape[0] - 2, 0, -1):
            n_here, n_next = sizes[m], sizes[m + 1]
            w_next = weight_offset(sizes, m + 1)
            d, d_next = block_offset(sizes, m, n), block_offset(sizes, m + 1, n)
            # d = d_next W_next, then d *= act'(a).
            if gemm and loop_gemm.gemm_if_pays(work, tag, Dl, d, Dl, d_next, False, params,
                                               w_next, False, n, n_here, n_next, False):
                _derivative_block(Dl, d, A, d, 0, n * n_here, acts[m - 1], one)
            elif threaded and threads_pay(n, n_here, n_next):
                _delta_layer_threads(Dl, d, A, d, params, w_next, d_next, n_here, n_next,
                                     acts[m - 1], one, n)
            else:
                _delta_layer(Dl, d, A, d, params, w_next, d_next, n_here, n_next, acts[m - 1],
                             one, 0, n)
    return impl


@overload(grad_pass, target="cpu", jit_options=JIT_NO_NRT)
def _grad_pass(tag, grad, Dl, A, n, sizes, work):
    threaded, gemm = _branches(tag, work)

    def impl(tag, grad, Dl, A, n, sizes, work):
        w, a_in = np.int64(0), np.int64(0)
        for m in range(1, sizes.shape[0]):
            n_in, n_out = sizes[m - 1], sizes[m]
            d = a_in + n * n_in
            # gW += delta^T a_in, gb += the column sums of delta.
            if gemm and loop_gemm.gemm_if_pays(work, tag, grad, w, Dl, d, True, A, a_in,
                                               False, n_out, n_in, n, True):
                _column_sums(grad, w + n_out * n_in, Dl, d, n, n_out)
            elif threaded and threads_pay(n, n_in, n_out):
                _grad_layer_threads(grad, w, Dl, d, A, a_in, n, n_in, n_out)
            else:
                _grad_layer(grad, w, Dl, d, A, a_in, n, n_in, n_out, 0, n_out)
            w += n_out * (n_in + 1)
            a_in = d
    return impl


@njit(**JIT_NO_NRT)
def all_finite(X):
    """Whether every value of the 2-D array X is finite (the lean paths' one check)."""
    for s in range(X.shape[0]):
        for j in range(X.shape[1]):
            if not math.isfinite(X[s, j]):
                return False
    return True


@njit(**JIT)
def forward_few(X, params, sizes, acts, out):
    """Network.forward's lean path for a few rows (a control loop's one): out (n, D[L]) =
    a[L] of X (n, D[0]), both of params' dtype, through the passes loop.forward runs below
    its ONE_OFF_MIN_WORK (serial, no gemm: the same numbers), with no check beyond this one:
    False, out untouched, where X holds a value that is not finite (the checked path then
    says which)."""
    n, d0 = X.shape
    if not all_finite(X):
        return False
    A = np.empty(n * np.sum(sizes), params.dtype)
    for s in range(n):
        for j in range(d0):
            A[s * d0 + j] = X[s, j]
    forward_pass(None, A, params, np.empty_like(params), n, sizes, acts, None)
    L = sizes.shape[0] - 1
    off = block_offset(sizes, L, n)
    for s in range(n):
        for i in range(sizes[L]):
            out[s, i] = A[off + s * sizes[L] + i]
    return True


@njit(**JIT_NO_NRT)
def _bias_rows(A, z, params, b, n, n_out):
    """z_si = b_i for the n rows of n_out at A[z:]; b at params[b:] (where a packed product
    then adds a_in W^T, as the tiles start their sums from the bias)."""
    z, b, n, n_out = _u(z), _u(b), _u(n), _u(n_out)
    for s in range(n):
        row = z + s * n_out
        for i in range(n_out):
            A[row + i] = params[b + i]


@njit(**JIT_NO_NRT)
def _column_sums(grad, b, Dl, d, n, n_out):
    """grad[b + i] += sum_s Dl[d + s n_out + i]: the bias gradient, samples in order."""
    b, d, n, n_out = _u(b), _u(d), _u(n), _u(n_out)
    for s in range(n):
        row = d + s * n_out
        for i in range(n_out):
            grad[b + i] += Dl[row + i]
