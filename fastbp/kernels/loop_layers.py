"""Per-layer CPU kernels for a batch: forward, delta, outer-product gradient, update.

Each register-blocked kernel sits beside its plain form -- the equation of DESIGN.md §1
as three nested loops -- which the tests hold it equal to. The blocked forms give every
load several independent multiply-adds (tiles of rows x samples) and keep the inner
loop over the contiguous index j of W[m]_ij and of a sample's row, so it vectorizes.

The kernels index the flat buffers of the backend contract through offsets -- no array
views, whose slicing and reference counting cost about 45 ns each and, in a small batch,
more than the arithmetic -- and the offsets are unsigned, so Numba adds no
negative-index wraparound, which would keep the loops from vectorizing:

    W       W[m] (n_out, n_in) at params[w:], row-major; b[m] right after it
    a_in    a[m-1] (n, n_in) at A[a_in:], the activations feeding the layer
    z       a[m] (n, n_out) at A[z:] (z before the activation is applied)
    d       delta[m] (n, n_out) at Dl[d:]

Threads (``*_threads``) split a layer's work where writes are disjoint -- samples in the
forward and delta kernels, rows of W in the gradient -- so every number is computed in
the same order as with one thread and results are bit-identical.
"""
import numba
import numpy as np
from numba import njit, types
from numba.extending import overload

from fastbp._config import JIT
from fastbp.kernels import loop_gemm, scalar

# Samples per cache block: a block of activations (SAMPLE_BLOCK rows of up to a few
# thousand floats) stays in L2 while rows of W stream through L1.
SAMPLE_BLOCK = 32
# Below this many multiply-adds per layer a thread team costs more than it saves, and
# the serial kernels run.
PARALLEL_MIN_WORK = 1 << 18

_u = np.uint64


@njit(**JIT)
def weight_offset(sizes, m):
    """Where W[m] starts in params (or grad); b[m] follows it."""
    p = 0
    for k in range(1, m):
        p += sizes[k] * (sizes[k - 1] + 1)
    return p


@njit(**JIT)
def block_offset(sizes, m, n):
    """Where block m, (n, D[m]), of a layer-major workspace for n samples starts."""
    off = 0
    for k in range(m):
        off += sizes[k]
    return off * n


# -- forward: z_si = sum_j W_ij * a_in_sj + b_i,  a = act(z) ----------------------------------

@njit(**JIT)
def _forward_layer_plain(A, z, params, w, a_in, n_in, n_out, code, one, lo, hi):
    """z_si = sum_j W_ij * a_in_sj + b_i, then a = act(z) in place, for samples lo..hi-1."""
    b = w + n_out * n_in
    for s in range(lo, hi):
        for i in range(n_out):
            acc = params[b + i]
            for j in range(n_in):
                acc += params[w + i * n_in + j] * A[a_in + s * n_in + j]
            A[z + s * n_out + i] = acc
        scalar.activate_row(A, z + s * n_out, n_out, code, one)


@njit(**JIT)
def _forward_layer(A, z, params, w, a_in, n_in, n_out, code, one, lo, hi):
    """_forward_layer_plain in 4 x 4 tiles of samples x rows; same sums, same order."""
    z, w, a_in, n_in, n_out = _u(z), _u(w), _u(a_in), _u(n_in), _u(n_out)
    lo, hi, four, block = _u(lo), _u(hi), _u(4), _u(SAMPLE_BLOCK)
    b = w + n_out * n_in
    # Four rows share each load of a_in_sj, four samples each load of W_ij: 16 independent
    # sums per 8 loads. The tile's 4 rows of W stay in L1 while a block of samples, held
    # in L2, streams past.
    full = n_out - n_out % four
    for s0 in range(lo, hi, block):
        s1 = min(s0 + block, hi)
        quads = s1 - (s1 - s0) % four
        for i in range(_u(0), full, four):
            r0 = w + i * n_in
            r1, r2, r3 = r0 + n_in, r0 + _u(2) * n_in, r0 + _u(3) * n_in
            b0, b1, b2, b3 = params[b + i], params[b + i + _u(1)], params[b + i + _u(2)], params[b + i + _u(3)]
            for s in range(s0, quads, four):
                x0 = a_in + s * n_in  # sample s + k at x<k>
                x1, x2, x3 = x0 + n_in, x0 + _u(2) * n_in, x0 + _u(3) * n_in
                # z<k><r>: z of sample s + k, output i + r.
                z00, z01, z02, z03 = b0, b1, b2, b3
                z10, z11, z12, z13 = b0, b1, b2, b3
                z20, z21, z22, z23 = b0, b1, b2, b3
                z30, z31, z32, z33 = b0, b1, b2, b3
                for j in range(n_in):  # contiguous in W and in a_in
                    a0, a1, a2, a3 = A[x0 + j], A[x1 + j], A[x2 + j], A[x3 + j]
                    w0, w1, w2, w3 = params[r0 + j], params[r1 + j], params[r2 + j], params[r3 + j]
                    z00 += w0 * a0
                    z01 += w1 * a0
                    z02 += w2 * a0
                    z03 += w3 * a0
                    z10 += w0 * a1
                    z11 += w1 * a1
                    z12 += w2 * a1
                    z13 += w3 * a1
                    z20 += w0 * a2
                    z21 += w1 * a2
                    z22 += w2 * a2
                    z23 += w3 * a2
                    z30 += w0 * a3
                    z31 += w1 * a3
                    z32 += w2 * a3
                    z33 += w3 * a3
                o = z + s * n_out + i
                A[o], A[o + _u(1)], A[o + _u(2)], A[o + _u(3)] = z00, z01, z02, z03
                o += n_out
                A[o], A[o + _u(1)], A[o + _u(2)], A[o + _u(3)] = z10, z11, z12, z13
                o += n_out
                A[o], A[o + _u(1)], A[o + _u(2)], A[o + _u(3)] = z20, z21, z22, z23
                o += n_out
                A[o], A[o + _u(1)], A[o + _u(2)], A[o + _u(3)] = z30, z31, z32, z33
            for s in range(quads, s1):  # the block's last samples, one at a time
                x0 = a_in + s * n_in
                z00, z01, z02, z03 = b0, b1, b2, b3
                for j in range(n_in):
                    a0 = A[x0 + j]
                    z00 += params[r0 + j] * a0
                    z01 += params[r1 + j] * a0
                    z02 += params[r2 + j] * a0
                    z03 += params[r3 + j] * a0
                o = z + s * n_out + i
                A[o], A[o + _u(1)], A[o + _u(2)], A[o + _u(3)] = z00, z01, z02, z03
        for i in range(full, n_out):  # the last rows, one at a time
            r0 = w + i * n_in
            for s in range(s0, s1):
                x0 = a_in + s * n_in
                acc = params[b + i]
                for j in range(n_in):
                    acc += params[r0 + j] * A[x0 + j]
                A[z + s * n_out + i] = acc
        scalar.activate_rows(A, z + s0 * n_out, s1 - s0, n_out, code, one)


# -- hidden delta: d_sj = act'(a_sj) * sum_i W_next_ij * d_next_si -------------------------------
#     d (n, n_here) at Dl[d:]; W_next (n_next, n_here) at params[w_next:], as in the forward
#     pass; d_next (n, n_next) at Dl[d_next:]; a (n, n_here), this layer's activations, at A[a:].

@njit(**JIT)
def _delta_layer_plain(Dl, d, A, a, params, w_next, d_next, n_here, n_next, code, one, lo, hi):
    """d_sj = act'(a_sj) * sum_i W_next_ij * d_next_si, for samples lo..hi-1."""
    for s in range(lo, hi):
        for j in range(n_here):
            acc = one - one
            for i in range(n_next):
                acc += params[w_next + i * n_here + j] * Dl[d_next + s * n_next + i]
            Dl[d + s * n_here + j] = acc * scalar.derivative(code, A[a + s * n_here + j], one)


@njit(**JIT)
def _delta_layer(Dl, d, A, a, params, w_next, d_next, n_here, n_next, code, one, lo, hi):
    """_delta_layer_plain with the sum over i taken 4 rows of W_next at a time, for 2
    samples at once."""
    d, a, w_next, d_next = _u(d), _u(a), _u(w_next), _u(d_next)
    n_here, n_next, lo, hi = _u(n_here), _u(n_next), _u(lo), _u(hi)
    four, two, block = _u(4), _u(2), _u(SAMPLE_BLOCK)
    # One sweep over j per 4 rows i: one load and store of d_sj per four multiply-adds,
    # and each load of W_next_ij serves two samples. The 4 rows stay in L1 across a
    # block of samples.
    full = n_next - n_next % four
    for s0 in range(lo, hi, block):
        s1 = min(s0 + block, hi)
        for k in range(d + s0 * n_here, d + s1 * n_here):
            Dl[k] = 0
        pairs = s1 - (s1 - s0) % two
        for i in range(_u(0), full, four):
            r0 = w_next + i * n_here
            r1, r2, r3 = r0 + n_here, r0 + _u(2) * n_here, r0 + _u(3) * n_here
            for s in range(s0, pairs, two):
                # e<k><r>: delta[m+1] of sample s + k, unit i + r.
                e0 = d_next + s * n_next + i
                e1 = e0 + n_next
                e00, e01, e02, e03 = Dl[e0], Dl[e0 + _u(1)], Dl[e0 + _u(2)], Dl[e0 + _u(3)]
                e10, e11, e12, e13 = Dl[e1], Dl[e1 + _u(1)], Dl[e1 + _u(2)], Dl[e1 + _u(3)]
                o0 = d + s * n_here
                o1 = o0 + n_here
                for j in range(n_here):  # contiguous in W_next and d
                    w0, w1, w2, w3 = params[r0 + j], params[r1 + j], params[r2 + j], params[r3 + j]
                    Dl[o0 + j] += w0 * e00 + w1 * e01 + w2 * e02 + w3 * e03
                    Dl[o1 + j] += w0 * e10 + w1 * e11 + w2 * e12 + w3 * e13
            for s in range(pairs, s1):
                e0 = d_next + s * n_next + i
                e00, e01, e02, e03 = Dl[e0], Dl[e0 + _u(1)], Dl[e0 + _u(2)], Dl[e0 + _u(3)]
                o0 = d + s * n_here
                for j in range(n_here):
                    Dl[o0 + j] += (params[r0 + j] * e00 + params[r1 + j] * e01
                                   + params[r2 + j] * e02 + params[r3 + j] * e03)
        for i in range(full, n_next):
            r0 = w_next + i * n_here
            for s in range(s0, s1):
                e00 = Dl[d_next + s * n_next + i]
                o0 = d + s * n_here
                for j in range(n_here):
                    Dl[o0 + j] += params[r0 + j] * e00
        _derivative_block(Dl, d, A, a, s0 * n_here, s1 * n_here, code, one)


@njit(**JIT)
def _derivative_block(Dl, d, A, a, lo, hi, code, one):
    """Dl[d + k] *= act'(A[a + k]) for k = lo..hi-1."""
    for k in range(lo, hi):
        Dl[d + k] *= scalar.derivative(code, A[a + k], one)


# -- gradient: gW_ij += sum_s d_si * a_in_sj,  gb_i += sum_s d_si ---------------------------------
#     gW (n_out, n_in) at grad[w:] and gb (n_out,) after it, in/out; d (n, n_out) at Dl[d:];
#     a_in (n, n_in) at A[a_in:].

@njit(**JIT)
def _grad_layer_plain(grad, w, Dl, d, A, a_in, n, n_in, n_out, lo, hi):
    """gW_ij += sum_s d_si * a_in_sj,  gb_i += sum_s d_si, for rows i = lo..hi-1."""
    b = w + n_out * n_in
    for s in range(n):
        for i in range(lo, hi):
            for j in range(n_in):
                grad[w + i * n_in + j] += Dl[d + s * n_out + i] * A[a_in + s * n_in + j]
            grad[b + i] += Dl[d + s * n_out + i]


@njit(**JIT)
def _grad_layer(grad, w, Dl, d, A, a_in, n, n_in, n_out, lo, hi):
    """_grad_layer_plain in 4 x 4 tiles of rows x samples; sums over samples in blocks."""
    w, d, a_in, n, n_in, n_out = _u(w), _u(d), _u(a_in), _u(n), _u(n_in), _u(n_out)
    lo, hi, four, block = _u(lo), _u(hi), _u(4), _u(SAMPLE_BLOCK)
    b = w + n_out * n_in
    # A block of samples (in L2) is swept once per 4 rows of gW (in L1). A 4 x 4 tile
    # of rows x samples gives 16 multiply-adds per 4 loads of a_in and 4 loads and
    # stores of gW. Contiguous in j.
    full_i = hi - (hi - lo) % four
    for s0 in range(_u(0), n, block):
        s1 = min(s0 + block, n)
        full_s = s1 - (s1 - s0) % four
        for i in range(lo, full_i, four):
            g0 = w + i * n_in  # row i + r of gW at g<r>
            g1, g2, g3 = g0 + n_in, g0 + _u(2) * n_in, g0 + _u(3) * n_in
            for s in range(s0, full_s, four):
                # d<r><k>: delta of unit i + r, sample s + k.
                e = d + s * n_out + i
                d00, d10, d20, d30 = Dl[e], Dl[e + _u(1)], Dl[e + _u(2)], Dl[e + _u(3)]
                e += n_out
                d01, d11, d21, d31 = Dl[e], Dl[e + _u(1)], Dl[e + _u(2)], Dl[e + _u(3)]
                e += n_out
                d02, d12, d22, d32 = Dl[e], Dl[e + _u(1)], Dl[e + _u(2)], Dl[e + _u(3)]
                e += n_out
                d03, d13, d23, d33 = Dl[e], Dl[e + _u(1)], Dl[e + _u(2)], Dl[e + _u(3)]
                x0 = a_in + s * n_in  # sample s + k at x<k>
                x1, x2, x3 = x0 + n_in, x0 + _u(2) * n_in, x0 + _u(3) * n_in
                for j in range(n_in):
                    a0, a1, a2, a3 = A[x0 + j], A[x1 + j], A[x2 + j], A[x3 + j]
                    grad[g0 + j] += d00 * a0 + d01 * a1 + d02 * a2 + d03 * a3
                    grad[g1 + j] += d10 * a0 + d11 * a1 + d12 * a2 + d13 * a3
                    grad[g2 + j] += d20 * a0 + d21 * a1 + d22 * a2 + d23 * a3
                    grad[g3 + j] += d30 * a0 + d31 * a1 + d32 * a2 + d33 * a3
            for s in range(full_s, s1):
                e = d + s * n_out + i
                d00, d10, d20, d30 = Dl[e], Dl[e + _u(1)], Dl[e + _u(2)], Dl[e + _u(3)]
                x0 = a_in + s * n_in
                for j in range(n_in):
                    a0 = A[x0 + j]
                    grad[g0 + j] += d00 * a0
                    grad[g1 + j] += d10 * a0
                    grad[g2 + j] += d20 * a0
                    grad[g3 + j] += d30 * a0
        for i in range(full_i, hi):
            g0 = w + i * n_in
            for s in range(s0, s1):
                d00 = Dl[d + s * n_out + i]
                x0 = a_in + s * n_in
                for j in range(n_in):
                    grad[g0 + j] += d00 * A[x0 + j]
        for s in range(s0, s1):
            for i in range(lo, hi):
                grad[b + i] += Dl[d + s * n_out + i]


# -- update: w <- optimizer step from g = scale * gW + l2 * W (biases: scale * gb) -----------------

@njit(**JIT)
def _update_layer(params, S0, S1, grad, w, n_w, n_b, scale, opt, lr, momentum, nesterov, l2,
                  step_size, beta1, beta2, sqrt_bc2, eps, eta_minus, eta_plus, step_min,
                  step_max, use_bias):
    """W, b <- scalar.optimizer_step from the penalized gradient: the layer's n_w weights at
    [w, w + n_w) of params, grad and the optimizer state rows S0, S1, its n_b biases right
    after them (see ``loop.update``)."""
    one = params.dtype.type(1)
    w, n_w, n_b = _u(w), _u(n_w), _u(n_b)
    for k in range(w, w + n_w):
        params[k], S0[k], S1[k] = scalar.optimizer_step(
            opt, params[k], scalar.penalized_gradient(grad[k], params[k], scale, l2), S0[k],
            S1[k], lr, momentum, nesterov, step_size, beta1, beta2, sqrt_bc2, eps, eta_minus,
            eta_plus, step_min, step_max, one)
    if use_bias:
        for k in range(w + n_w, w + n_w + n_b):
            params[k], S0[k], S1[k] = scalar.optimizer_step(
                opt, params[k], scale * grad[k], S0[k], S1[k], lr, momentum, nesterov,
                step_size, beta1, beta2, sqrt_bc2, eps, eta_minus, eta_plus, step_min,
                step_max, one)


# -- threads ------------------------------------------------------------------------------------

@njit(**JIT)
def threads_pay(n, n_in, n_out):
    """Whether a layer of n_in x n_out weights over n samples is worth a thread team. The
    thread count is not consulted: reading it from compiled code would make every caller
    uncacheable. With one thread the threaded kernels run serially."""
    return n * n_in * n_out >= PARALLEL_MIN_WORK


@njit(parallel=True, **JIT)
def _forward_layer_threads(A, z, params, w, a_in, n_in, n_out, code, one, n):
    for k in numba.prange((n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        _forward_layer(A, z, params, w, a_in, n_in, n_out, code, one, k * SAMPLE_BLOCK,
                       min((k + 1) * SAMPLE_BLOCK, n))


@njit(parallel=True, **JIT)
def _delta_layer_threads(Dl, d, A, a, params, w_next, d_next, n_here, n_next, code, one, n):
    for k in numba.prange((n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        _delta_layer(Dl, d, A, a, params, w_next, d_next, n_here, n_next, code, one,
                     k * SAMPLE_BLOCK, min((k + 1) * SAMPLE_BLOCK, n))


@njit(parallel=True, **JIT)
def _grad_layer_threads(grad, w, Dl, d, A, a_in, n, n_in, n_out):
    rows = 4 * max(1, n_out // 64)  # about 16 chunks of whole 4-row tiles
    for k in numba.prange((n_out + rows - 1) // rows):
        _grad_layer(grad, w, Dl, d, A, a_in, n, n_in, n_out, k * rows,
                    min((k + 1) * rows, n_out))


# -- all layers: serial, or on threads where they pay --------------------------------------
# The passes below take a ``tag``: None for the serial kernels, an array (loop.threads_tag) for
# the threaded ones. They are overloads chosen by the tag's type when the caller compiles,
# so a run that never uses threads never compiles the parallel kernels (about a third of
# the cold start), while every caller is written once.

def forward_pass(tag, A, params, n, sizes, acts, work):
    """z[m] = W[m] a[m-1] + b[m], a[m] = act_m(z[m]) for m = 1..L (see loop.forward); work
    from loop_gemm.work_for (None: no gemm compiled), for the layers where gemm pays."""
    raise NotImplementedError("compiled code only")


def delta_pass(tag, Dl, A, params, n, sizes, acts, work):
    """delta[m] = act_m' (*) W[m+1]^T delta[m+1] for m = L-1..1 (see loop.hidden_deltas)."""
    raise NotImplementedError("compiled code only")


def grad_pass(tag, grad, Dl, A, n, sizes, work):
    """grad += the summed outer products, every layer (see loop.accumulate_gradients)."""
    raise NotImplementedError("compiled code only")


@overload(forward_pass, target="cpu")
def _forward_pass(tag, A, params, n, sizes, acts, work):
    threaded = not isinstance(tag, types.NoneType)
    gemm = not isinstance(work, types.NoneType)  # False: the gemm branch is not compiled

    def impl(tag, A, params, n, sizes, acts, work):
        one = params.dtype.type(1)
        w, z = np.int64(0), np.int64(0)  # not Literal[int](0): one specialization
        for m in range(1, sizes.shape[0]):
            n_in, n_out = sizes[m - 1], sizes[m]
            a_in, z = z, z + n * n_in
            # z = a_in W^T, then z += b and a = act(z) row by row.
            if gemm and loop_gemm.gemm_if_pays(work, tag, A, z, A, a_in, False, params, w,
                                               True, n, n_out, n_in, False):
                _bias_activate(A, z, params, w + n_out * n_in, n, n_out, acts[m - 1], one)
            elif threaded and threads_pay(n, n_in, n_out):
                _forward_layer_threads(A, z, params, w, a_in, n_in, n_out, acts[m - 1], one, n)
            else:
                _forward_layer(A, z, params, w, a_in, n_in, n_out, acts[m - 1], one, 0, n)
            w += n_out * (n_in + 1)
    return impl


@overload(delta_pass, target="cpu")
def _delta_pass(tag, Dl, A, params, n, sizes, acts, work):
    threaded = not isinstance(tag, types.NoneType)
    gemm = not isinstance(work, types.NoneType)  # False: the gemm branch is not compiled

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


@overload(grad_pass, target="cpu")
def _grad_pass(tag, grad, Dl, A, n, sizes, work):
    threaded = not isinstance(tag, types.NoneType)
    gemm = not isinstance(work, types.NoneType)  # False: the gemm branch is not compiled

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


@njit(**JIT)
def _bias_activate(A, z, params, b, n, n_out, code, one):
    """z_si += b_i, then a = act(z), for the n rows of n_out at A[z:]; b at params[b:]."""
    z, b, n, n_out = _u(z), _u(b), _u(n), _u(n_out)
    for s in range(n):
        row = z + s * n_out
        for i in range(n_out):
            A[row + i] += params[b + i]
    scalar.activate_rows(A, z, n, n_out, code, one)


@njit(**JIT)
def _column_sums(grad, b, Dl, d, n, n_out):
    """grad[b + i] += sum_s Dl[d + s n_out + i]: the bias gradient."""
    b, d, n, n_out = _u(b), _u(d), _u(n), _u(n_out)
    for s in range(n):
        row = d + s * n_out
        for i in range(n_out):
            grad[b + i] += Dl[row + i]
