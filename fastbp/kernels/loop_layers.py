"""Per-layer CPU kernels for a batch: forward, delta, outer-product gradient, update.

Each register-blocked kernel sits beside its plain form -- the equation of DESIGN.md §1
as three nested loops -- which the tests hold it equal to. The blocked forms give every
load several independent multiply-adds (tiles of rows x samples) and keep the inner
loop over the contiguous index j of W[m]_ij and of a sample's row, so it vectorizes.
Arrays are 2-D views cut by ``loop.py``:

    W       (n_out, n_in)   weights of the layer, W[m]
    a_in    (n, n_in)       activations feeding it, a[m-1]
    z       (n, n_out)      its activations, a[m] (z before the activation is applied)
    d       (n, n_out)      its deltas, delta[m]

Threads (``*_threads``) split a layer's work where writes are disjoint -- samples in the
forward and delta kernels, rows of W in the gradient -- so every number is computed in
the same order as with one thread and results are bit-identical.
"""
import numba
from numba import njit, types
from numba.extending import overload

from fastbp._config import JIT
from fastbp.kernels import scalar

# Samples per cache block: a block of activations (SAMPLE_BLOCK rows of up to a few
# thousand floats) stays in L2 while rows of W stream through L1.
SAMPLE_BLOCK = 32
# Below this many multiply-adds per layer a thread team costs more than it saves, and
# the serial kernels run.
PARALLEL_MIN_WORK = 1 << 18


# -- views --------------------------------------------------------------------------------

@njit(**JIT)
def layer_view(params, sizes, m):
    """Views W[m] (D[m], D[m-1]) and b[m] (D[m],) of params (or of grad)."""
    p = 0
    for k in range(1, m):
        p += sizes[k] * (sizes[k - 1] + 1)
    n_out, n_in = sizes[m], sizes[m - 1]
    W = params[p:p + n_out * n_in].reshape((n_out, n_in))
    b = params[p + n_out * n_in:p + n_out * (n_in + 1)]
    return W, b


@njit(**JIT)
def block_offset(sizes, m, n):
    """Where block m, (n, D[m]), of a layer-major workspace for n samples starts."""
    off = 0
    for k in range(m):
        off += sizes[k]
    return off * n


@njit(**JIT)
def block_view(A, sizes, m, n):
    """View of block m, (n, D[m]), of a layer-major workspace for n samples."""
    off = block_offset(sizes, m, n)
    return A[off:off + n * sizes[m]].reshape((n, sizes[m]))


# -- forward: z_si = sum_j W_ij * a_in_sj + b_i,  a = act(z) ----------------------------------

@njit(**JIT)
def _forward_layer_plain(z, W, b, a_in, code, one, lo, hi):
    """z_si = sum_j W_ij * a_in_sj + b_i, then a = act(z) in place, for samples lo..hi-1."""
    n_out, n_in = W.shape
    for s in range(lo, hi):
        for i in range(n_out):
            acc = b[i]
            for j in range(n_in):
                acc += W[i, j] * a_in[s, j]
            z[s, i] = acc
        scalar.activate_row(z[s], 0, n_out, code, one)


@njit(**JIT)
def _forward_layer(z, W, b, a_in, code, one, lo, hi):
    """_forward_layer_plain in 4 x 4 tiles of samples x rows; same sums, same order."""
    n_out, n_in = W.shape
    # Four rows share each load of a_in_sj, four samples each load of W_ij: 16 independent
    # sums per 8 loads. The tile's 4 rows of W stay in L1 while a block of samples, held
    # in L2, streams past.
    full = n_out - n_out % 4
    for s0 in range(lo, hi, SAMPLE_BLOCK):
        s1 = min(s0 + SAMPLE_BLOCK, hi)
        quads = s1 - (s1 - s0) % 4
        for i in range(0, full, 4):
            for s in range(s0, quads, 4):
                # z<k><r>: z of sample s + k, output i + r.
                z00, z01, z02, z03 = b[i], b[i + 1], b[i + 2], b[i + 3]
                z10, z11, z12, z13 = b[i], b[i + 1], b[i + 2], b[i + 3]
                z20, z21, z22, z23 = b[i], b[i + 1], b[i + 2], b[i + 3]
                z30, z31, z32, z33 = b[i], b[i + 1], b[i + 2], b[i + 3]
                for j in range(n_in):  # contiguous in W and in a_in
                    x0, x1, x2, x3 = a_in[s, j], a_in[s + 1, j], a_in[s + 2, j], a_in[s + 3, j]
                    w0, w1, w2, w3 = W[i, j], W[i + 1, j], W[i + 2, j], W[i + 3, j]
                    z00 += w0 * x0
                    z01 += w1 * x0
                    z02 += w2 * x0
                    z03 += w3 * x0
                    z10 += w0 * x1
                    z11 += w1 * x1
                    z12 += w2 * x1
                    z13 += w3 * x1
                    z20 += w0 * x2
                    z21 += w1 * x2
                    z22 += w2 * x2
                    z23 += w3 * x2
                    z30 += w0 * x3
                    z31 += w1 * x3
                    z32 += w2 * x3
                    z33 += w3 * x3
                z[s, i], z[s, i + 1], z[s, i + 2], z[s, i + 3] = z00, z01, z02, z03
                z[s + 1, i], z[s + 1, i + 1], z[s + 1, i + 2], z[s + 1, i + 3] = z10, z11, z12, z13
                z[s + 2, i], z[s + 2, i + 1], z[s + 2, i + 2], z[s + 2, i + 3] = z20, z21, z22, z23
                z[s + 3, i], z[s + 3, i + 1], z[s + 3, i + 2], z[s + 3, i + 3] = z30, z31, z32, z33
            for s in range(quads, s1):  # the block's last samples, one at a time
                z00, z01, z02, z03 = b[i], b[i + 1], b[i + 2], b[i + 3]
                for j in range(n_in):
                    x0 = a_in[s, j]
                    z00 += W[i, j] * x0
                    z01 += W[i + 1, j] * x0
                    z02 += W[i + 2, j] * x0
                    z03 += W[i + 3, j] * x0
                z[s, i], z[s, i + 1], z[s, i + 2], z[s, i + 3] = z00, z01, z02, z03
        for i in range(full, n_out):  # the last rows, one at a time
            for s in range(s0, s1):
                acc = b[i]
                for j in range(n_in):
                    acc += W[i, j] * a_in[s, j]
                z[s, i] = acc
        for s in range(s0, s1):
            scalar.activate_row(z[s], 0, n_out, code, one)


# -- hidden delta: d_sj = act'(a_sj) * sum_i W_next_ij * d_next_si -------------------------------
#     d (n, n_here) out; W_next (n_next, n_here), as in the forward pass; d_next (n, n_next);
#     a (n, n_here), this layer's activations.

@njit(**JIT)
def _delta_layer_plain(d, W_next, d_next, a, code, one, lo, hi):
    """d_sj = act'(a_sj) * sum_i W_next_ij * d_next_si, for samples lo..hi-1."""
    n_next, n_here = W_next.shape
    for s in range(lo, hi):
        for j in range(n_here):
            acc = one - one
            for i in range(n_next):
                acc += W_next[i, j] * d_next[s, i]
            d[s, j] = acc * scalar.derivative(code, a[s, j], one)


@njit(**JIT)
def _delta_layer(d, W_next, d_next, a, code, one, lo, hi):
    """_delta_layer_plain with the sum over i taken 4 rows of W_next at a time, for 2
    samples at once."""
    n_next, n_here = W_next.shape
    # One sweep over j per 4 rows i: one load and store of d_sj per four multiply-adds,
    # and each load of W_next_ij serves two samples. The 4 rows stay in L1 across a
    # block of samples.
    full = n_next - n_next % 4
    for s0 in range(lo, hi, SAMPLE_BLOCK):
        s1 = min(s0 + SAMPLE_BLOCK, hi)
        d[s0:s1, :] = 0
        pairs = s1 - (s1 - s0) % 2
        for i in range(0, full, 4):
            for s in range(s0, pairs, 2):
                # e<k><r>: delta[m+1] of sample s + k, unit i + r.
                e00, e01, e02, e03 = d_next[s, i], d_next[s, i + 1], d_next[s, i + 2], d_next[s, i + 3]
                e10, e11, e12, e13 = (d_next[s + 1, i], d_next[s + 1, i + 1], d_next[s + 1, i + 2],
                                      d_next[s + 1, i + 3])
                for j in range(n_here):  # contiguous in W_next and d
                    w0, w1, w2, w3 = W_next[i, j], W_next[i + 1, j], W_next[i + 2, j], W_next[i + 3, j]
                    d[s, j] += w0 * e00 + w1 * e01 + w2 * e02 + w3 * e03
                    d[s + 1, j] += w0 * e10 + w1 * e11 + w2 * e12 + w3 * e13
            for s in range(pairs, s1):
                e00, e01, e02, e03 = d_next[s, i], d_next[s, i + 1], d_next[s, i + 2], d_next[s, i + 3]
                for j in range(n_here):
                    d[s, j] += (W_next[i, j] * e00 + W_next[i + 1, j] * e01
                                + W_next[i + 2, j] * e02 + W_next[i + 3, j] * e03)
        for i in range(full, n_next):
            for s in range(s0, s1):
                e00 = d_next[s, i]
                for j in range(n_here):
                    d[s, j] += W_next[i, j] * e00
        for s in range(s0, s1):
            for j in range(n_here):
                d[s, j] *= scalar.derivative(code, a[s, j], one)


# -- gradient: gW_ij += sum_s d_si * a_in_sj,  gb_i += sum_s d_si ---------------------------------
#     gW (n_out, n_in) and gb (n_out,) in/out; d (n, n_out); a_in (n, n_in).

@njit(**JIT)
def _grad_layer_plain(gW, gb, d, a_in, lo, hi):
    """gW_ij += sum_s d_si * a_in_sj,  gb_i += sum_s d_si, for rows i = lo..hi-1."""
    n = d.shape[0]
    n_in = gW.shape[1]
    for s in range(n):
        for i in range(lo, hi):
            for j in range(n_in):
                gW[i, j] += d[s, i] * a_in[s, j]
            gb[i] += d[s, i]


@njit(**JIT)
def _grad_layer(gW, gb, delta, a_in, lo, hi):
    """_grad_layer_plain in 4 x 4 tiles of rows x samples; sums over samples in blocks."""
    n = delta.shape[0]
    n_in = gW.shape[1]
    # A block of samples (in L2) is swept once per 4 rows of gW (in L1). A 4 x 4 tile
    # of rows x samples gives 16 multiply-adds per 4 loads of a_in and 4 loads and
    # stores of gW. Contiguous in j.
    full_i = hi - (hi - lo) % 4
    for s0 in range(0, n, SAMPLE_BLOCK):
        s1 = min(s0 + SAMPLE_BLOCK, n)
        full_s = s1 - (s1 - s0) % 4
        for i in range(lo, full_i, 4):
            g0, g1, g2, g3 = gW[i], gW[i + 1], gW[i + 2], gW[i + 3]
            for s in range(s0, full_s, 4):
                # d<r><k>: delta of unit i + r, sample s + k.
                d00, d01, d02, d03 = delta[s, i], delta[s + 1, i], delta[s + 2, i], delta[s + 3, i]
                d10, d11, d12, d13 = (delta[s, i + 1], delta[s + 1, i + 1], delta[s + 2, i + 1],
                                      delta[s + 3, i + 1])
                d20, d21, d22, d23 = (delta[s, i + 2], delta[s + 1, i + 2], delta[s + 2, i + 2],
                                      delta[s + 3, i + 2])
                d30, d31, d32, d33 = (delta[s, i + 3], delta[s + 1, i + 3], delta[s + 2, i + 3],
                                      delta[s + 3, i + 3])
                for j in range(n_in):
                    x0, x1, x2, x3 = a_in[s, j], a_in[s + 1, j], a_in[s + 2, j], a_in[s + 3, j]
                    g0[j] += d00 * x0 + d01 * x1 + d02 * x2 + d03 * x3
                    g1[j] += d10 * x0 + d11 * x1 + d12 * x2 + d13 * x3
                    g2[j] += d20 * x0 + d21 * x1 + d22 * x2 + d23 * x3
                    g3[j] += d30 * x0 + d31 * x1 + d32 * x2 + d33 * x3
            for s in range(full_s, s1):
                d00, d10, d20, d30 = delta[s, i], delta[s, i + 1], delta[s, i + 2], delta[s, i + 3]
                for j in range(n_in):
                    x0 = a_in[s, j]
                    g0[j] += d00 * x0
                    g1[j] += d10 * x0
                    g2[j] += d20 * x0
                    g3[j] += d30 * x0
        for i in range(full_i, hi):
            g0 = gW[i]
            for s in range(s0, s1):
                d00 = delta[s, i]
                for j in range(n_in):
                    g0[j] += d00 * a_in[s, j]
        for s in range(s0, s1):
            for i in range(lo, hi):
                gb[i] += delta[s, i]


# -- update: w <- optimizer step from g = scale * gW + l2 * W (biases: scale * gb) -----------------

@njit(**JIT)
def _update_layer(W, b, S0W, S0b, S1W, S1b, gW, gb, scale, opt, lr, momentum, nesterov, l2,
                  step_size, beta1, beta2, sqrt_bc2, eps, eta_minus, eta_plus, step_min,
                  step_max, use_bias):
    """W, b <- scalar.optimizer_step from the penalized gradient; S0*, S1* the optimizer
    state of W and b (see ``loop.update``)."""
    one = W.dtype.type(1)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            W[i, j], S0W[i, j], S1W[i, j] = scalar.optimizer_step(
                opt, W[i, j], scalar.penalized_gradient(gW[i, j], W[i, j], scale, l2),
                S0W[i, j], S1W[i, j], lr, momentum, nesterov, step_size, beta1, beta2,
                sqrt_bc2, eps, eta_minus, eta_plus, step_min, step_max, one)
        if use_bias:
            b[i], S0b[i], S1b[i] = scalar.optimizer_step(
                opt, b[i], scale * gb[i], S0b[i], S1b[i], lr, momentum, nesterov, step_size,
                beta1, beta2, sqrt_bc2, eps, eta_minus, eta_plus, step_min, step_max, one)


# -- threads ------------------------------------------------------------------------------------

@njit(**JIT)
def threads_pay(n, W):
    """Whether a layer of W's size over n samples is worth a thread team. The thread count
    is not consulted: reading it from compiled code would make every caller uncacheable.
    With one thread the threaded kernels run serially."""
    return n * W.size >= PARALLEL_MIN_WORK


@njit(parallel=True, **JIT)
def _forward_layer_threads(z, W, b, a_in, code, one):
    n = z.shape[0]
    for k in numba.prange((n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        _forward_layer(z, W, b, a_in, code, one, k * SAMPLE_BLOCK, min((k + 1) * SAMPLE_BLOCK, n))


@njit(parallel=True, **JIT)
def _delta_layer_threads(d, W_next, d_next, a, code, one):
    n = d.shape[0]
    for k in numba.prange((n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        _delta_layer(d, W_next, d_next, a, code, one, k * SAMPLE_BLOCK,
                     min((k + 1) * SAMPLE_BLOCK, n))


@njit(parallel=True, **JIT)
def _grad_layer_threads(gW, gb, delta, a_in):
    n_out = gW.shape[0]
    rows = 4 * max(1, n_out // 64)  # about 16 chunks of whole 4-row tiles
    for k in numba.prange((n_out + rows - 1) // rows):
        _grad_layer(gW, gb, delta, a_in, k * rows, min((k + 1) * rows, n_out))



# -- all layers: serial, or on threads where they pay --------------------------------------
# The passes below take a ``tag``: None for the serial kernels, an array (loop.THREADS) for
# the threaded ones. They are overloads chosen by the tag's type when the caller compiles,
# so a run that never uses threads never compiles the parallel kernels (about a third of
# the cold start), while every caller is written once.

def forward_pass(tag, A, params, n, sizes, acts):
    """z[m] = W[m] a[m-1] + b[m], a[m] = act_m(z[m]) for m = 1..L (see loop.forward)."""
    raise NotImplementedError("compiled code only")


def delta_pass(tag, Dl, A, params, n, sizes, acts):
    """delta[m] = act_m' (*) W[m+1]^T delta[m+1] for m = L-1..1 (see loop.hidden_deltas)."""
    raise NotImplementedError("compiled code only")


def grad_pass(tag, grad, Dl, A, n, sizes):
    """grad += the summed outer products, every layer (see loop.accumulate_gradients)."""
    raise NotImplementedError("compiled code only")


@overload(forward_pass, target="cpu")
def _forward_pass(tag, A, params, n, sizes, acts):
    threaded = not isinstance(tag, types.NoneType)

    def impl(tag, A, params, n, sizes, acts):
        one = params.dtype.type(1)
        for m in range(1, sizes.shape[0]):
            W, b = layer_view(params, sizes, m)
            z, a_in = block_view(A, sizes, m, n), block_view(A, sizes, m - 1, n)
            if threaded and threads_pay(n, W):
                _forward_layer_threads(z, W, b, a_in, acts[m - 1], one)
            else:
                _forward_layer(z, W, b, a_in, acts[m - 1], one, 0, n)
    return impl


@overload(delta_pass, target="cpu")
def _delta_pass(tag, Dl, A, params, n, sizes, acts):
    threaded = not isinstance(tag, types.NoneType)

    def impl(tag, Dl, A, params, n, sizes, acts):
        one = params.dtype.type(1)
        for m in range(sizes.shape[0] - 2, 0, -1):
            W_next, _ = layer_view(params, sizes, m + 1)
            d, d_next = block_view(Dl, sizes, m, n), block_view(Dl, sizes, m + 1, n)
            a = block_view(A, sizes, m, n)
            if threaded and threads_pay(n, W_next):
                _delta_layer_threads(d, W_next, d_next, a, acts[m - 1], one)
            else:
                _delta_layer(d, W_next, d_next, a, acts[m - 1], one, 0, n)
    return impl


@overload(grad_pass, target="cpu")
def _grad_pass(tag, grad, Dl, A, n, sizes):
    threaded = not isinstance(tag, types.NoneType)

    def impl(tag, grad, Dl, A, n, sizes):
        for m in range(1, sizes.shape[0]):
            gW, gb = layer_view(grad, sizes, m)
            d, a_in = block_view(Dl, sizes, m, n), block_view(A, sizes, m - 1, n)
            if threaded and threads_pay(n, gW):
                _grad_layer_threads(gW, gb, d, a_in)
            else:
                _grad_layer(gW, gb, d, a_in, 0, gW.shape[0])
    return impl
