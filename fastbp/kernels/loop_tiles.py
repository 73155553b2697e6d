"""Register-blocked tiles that sum in the equation's own order: the three products of a
layer on the CPU, vectorized across independent outputs, never across a sum.

Every product of backpropagation is, element by element, a sum over one index k taken in
order from a starting value -- the plain loops of ``loop_layers`` (``*_plain``) write
exactly that. A SIMD kernel that splits such a sum across vector lanes (what LLVM does to a
reduction when it may reassociate) computes other numbers, and different numbers in
different contexts: it is why fastbp compiles without "reassoc". Here the lanes are other
*outputs* instead:

    C[r, l] = C0[r, l] + sum_{k = 0..K-1} A(r, k) * B(k, l)       k in order, each step
                                                                  one fused multiply-add

for R rows r (each A(r, k) a scalar, broadcast) and U vectors of lanes l (each B(k, .) a
contiguous run of memory). The R x U vector sums stay in registers while k runs, and every
element is the plain loop's sum, step for step, so a tiled kernel equals its plain form
bit for bit, and so do the packed products of ``loop_gemm``, which sum the same way.

    tile(C, c, ldc, I, i, irs, init, A, a, ar, ak, B, b, bk, K, rows, width)
        C[c + r ldc + l] = C0 + sum_k A[a + r ar + k ak] * B[b + k bk + l]
        for r < rows (<= R), l < width (<= U V); C0 is 0 (init 0), or I[i + r irs + l]
        (init 1: irs = ldc and I = C accumulates, irs = 0 broadcasts one row, a bias).

The three products of a layer (W[m] (n_out, n_in) row-major, activations sample-major):
    forward   z[s, i]  = b_i + sum_j a_in[s, j] * WT[j, i]     lanes: outputs i (WT = W^T)
    delta     d[s, j]  = 0   + sum_i d_next[s, i] * W[i, j]    lanes: units j
    gradient  gW[i, j] = gW  + sum_s d[s, i] * a_in[s, j]      lanes: inputs j

A vector holds V = VECTOR_BYTES / itemsize elements; a tile is R = loop_gemm.MR rows by two
vectors: 6 x 16 floats with AVX2 (12 ymm sums), 8 x 32 with AVX-512 (16 zmm). Edges cost
nothing past the width: a tile of ``width`` lanes computes only the vectors it needs, the
last one masked (masked loads; its lanes stored one by one, as a masked store is slow on
some CPUs), and rows past ``rows`` repeat the last row's loads and are not stored.
Multiply-adds are ``llvm.fmuladd``, fused exactly where the plain loops' ``vmath.madd``
is.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, register_jitable

from fastbp._config import JIT
from fastbp.kernels.loop_gemm import MR, VECTOR_BYTES

R = MR     # rows of a tile
U = 2      # vectors of lanes in a tile

_u = np.uint64


@register_jitable
def lanes(itemsize):
    """Lanes of a tile, U vectors of V elements of this size."""
    return U * VECTOR_BYTES // itemsize


@intrinsic
def tile(typingctx, C, c, ldc, I, i, irs, init, A, a, ar, ak, B, b, bk, K, rows, width):
    """See the module docstring. Offsets and counts are unsigned integers; C, I, A and B
    arrays of one float dtype."""
    dtype = C.dtype
    if not isinstance(dtype, types.Float) or any(x.dtype != dtype for x in (I, A, B)):
        return None
    u64 = types.uint64
    sig = types.void(C, u64, u64, I, u64, u64, u64, A, u64, u64, u64, B, u64, u64, u64, u64,
                     u64)
    V = VECTOR_BYTES // (dtype.bitwidth // 8)
    align = dtype.bitwidth // 8

    def codegen(context, builder, signature, args):
        (c_arr, c_off, ldc_, i_arr, i_off, irs_, init_, a_arr, a_off, ar_, ak_, b_arr, b_off,
         bk_, k_count, rows_, width_) = args
        scalar_t = context.get_value_type(dtype)
        vec_t = ir.VectorType(scalar_t, V)
        vptr_t = vec_t.as_pointer()
        i1, i32, i64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
        mask_t = ir.VectorType(i1, V)
        mod = builder.module
        suffix = "f32" if dtype.bitwidth == 32 else "f64"
        fmuladd = cgutils.get_or_insert_function(
            mod, ir.FunctionType(vec_t, [vec_t, vec_t, vec_t]), f"llvm.fmuladd.v{V}{suffix}")
        mload = cgutils.get_or_insert_function(
            mod, ir.FunctionType(vec_t, [vptr_t, i32, mask_t, vec_t]),
            f"llvm.masked.load.v{V}{suffix}.p0")
        mstore = cgutils.get_or_insert_function(
            mod, ir.FunctionType(ir.VoidType(), [vec_t, vptr_t, i32, mask_t]),
            f"llvm.masked.store.v{V}{suffix}.p0")

        def data(k):
            return context.make_array(signature.args[k])(context, builder, args[k]).data

        c_ptr, i_ptr, a_ptr, b_ptr = data(0), data(3), data(7), data(11)
        zero_vec = ir.Constant(vec_t, None)
        undef = ir.Constant(vec_t, ir.Undefined)
        splat0 = ir.Constant(ir.VectorType(i32, V), [0] * V)
        lane = ir.Constant(ir.VectorType(i64, V), list(range(V)))
        # Rows past ``rows`` read the last row again (in bounds) and are never stored.
        last = builder.sub(rows_, ir.Constant(i64, 1))
        row = [builder.select(builder.icmp_unsigned("<", ir.Constant(i64, r), rows_),
                              ir.Constant(i64, r), last) for r in range(R)]
        a_rows = [builder.gep(a_ptr, [builder.add(a_off, builder.mul(row[r], ar_))])
                  for r in range(R)]
        # The lanes: ``full`` whole vectors, then a vector of ``rem`` lanes if rem > 0.
        full_ = builder.udiv(width_, ir.Constant(i64, V))
        rem = builder.urem(width_, ir.Constant(i64, V))
        v = builder.insert_element(ir.Constant(ir.VectorType(i64, V), ir.Undefined), rem,
                                   ir.Constant(i32, 0))
        mask = builder.icmp_unsigned("<", lane, builder.shuffle_vector(v, v, splat0))
        sums = [[cgutils.alloca_once_value(builder, zero_vec) for _ in range(U)]
                for _ in range(R)]

        def address(ptr, u):
            return builder.bitcast(builder.gep(ptr, [ir.Constant(i64, u * V)]), vptr_t)

        def load(ptr, u, partial):
            if partial:  # masked: lanes past the width are never read
                return builder.call(mload, [address(ptr, u), ir.Constant(i32, align), mask,
                                            zero_vec])
            return builder.load(address(ptr, u), align=align)

        def emit(n_full, partial):
            """The tile for n_full whole vectors and, if partial, one of rem lanes: only
            those vectors are loaded, multiplied and stored."""
            kinds = [False] * n_full + [True] * partial
            with builder.if_then(builder.icmp_unsigned("!=", init_, ir.Constant(i64, 0))):
                for r in range(R):
                    start = builder.gep(i_ptr, [builder.add(i_off, builder.mul(row[r], irs_))])
                    for u, part in enumerate(kinds):
                        builder.store(load(start, u, part), sums[r][u])
            with cgutils.for_range(builder, k_count) as loop:
                k = loop.index
                b_row = builder.gep(b_ptr, [builder.add(b_off, builder.mul(k, bk_))])
                b_vec = [load(b_row, u, part) for u, part in enumerate(kinds)]
                ka = builder.mul(k, ak_)
                for r in range(R):
                    x = builder.load(builder.gep(a_rows[r], [ka]))
                    x_vec = builder.shuffle_vector(
                        builder.insert_element(undef, x, ir.Constant(i32, 0)), undef, splat0)
                    for u in range(len(kinds)):
                        builder.store(builder.call(fmuladd, [x_vec, b_vec[u],
                                                             builder.load(sums[r][u])]),
                                      sums[r][u])
            for r in range(R):
                with builder.if_then(builder.icmp_unsigned("<", ir.Constant(i64, r), rows_)):
                    start = builder.gep(c_ptr, [builder.add(c_off, builder.mul(
                        ir.Constant(i64, r), ldc_))])
                    for u, part in enumerate(kinds):
                        value = builder.load(sums[r][u])
                        if not part:
                            builder.store(value, address(start, u), align=align)
                            continue
                        # The last lanes one by one: a masked store is slow on some CPUs.
                        for l in range(V - 1):
                            with builder.if_then(builder.icmp_unsigned(
                                    "<", ir.Constant(i64, l), rem)):
                                builder.store(builder.extract_element(
                                    value, ir.Constant(i32, l)),
                                    builder.gep(start, [ir.Constant(i64, u * V + l)]))

        # One code path per shape of the lanes (n_full whole vectors, a partial one or not).
        cases = [(f, p) for f in range(U + 1) for p in (0, 1) if 0 < f + p <= U]
        end = builder.append_basic_block("tile.end")
        for n_full, partial in cases:
            here = builder.and_(
                builder.icmp_unsigned("==", full_, ir.Constant(i64, n_full)),
                builder.icmp_unsigned("!=" if partial else "==", rem, ir.Constant(i64, 0)))
            with builder.if_then(here):
                emit(n_full, partial)
        builder.branch(end)
        builder.position_at_end(end)
        return context.get_dummy_value()
    return sig, codegen


# -- the three products of a layer, tile by tile ------------------------------------------------

@njit(**JIT)
def forward_rows(A, z, params, b, WT, wt, a_in, n_in, n_out, lo, hi):
    """z[s, i] = b_i + sum_j a_in[s, j] WT[j, i] for samples lo..hi-1 (no activation):
    z (n, n_out) at A[z:], a_in (n, n_in) at A[a_in:], b at params[b:], WT (n_in, n_out)
    at WT[wt:]."""
    z, b, wt, a_in, n_in, n_out = _u(z), _u(b), _u(wt), _u(a_in), _u(n_in), _u(n_out)
    lo, hi = _u(lo), _u(hi)
    width = _u(lanes(A.itemsize))
    for i0 in range(_u(0), n_out, width):  # WT's panel of these outputs stays in L1
        w = min(width, n_out - i0)
        for s0 in range(lo, hi, _u(R)):
            tile(A, z + s0 * n_out + i0, n_out, params, b + i0, _u(0), _u(1),
                 A, a_in + s0 * n_in, n_in, _u(1), WT, wt + i0, n_out, n_in,
                 min(_u(R), hi - s0), w)


@njit(**JIT)
def delta_rows(Dl, d, params, w_next, d_next, n_here, n_next, lo, hi):
    """d[s, j] = sum_i d_next[s, i] W_next[i, j] for samples lo..hi-1 (before act'):
    d (n, n_here) at Dl[d:], d_next (n, n_next) at Dl[d_next:], W_next (n_next, n_here)
    at params[w_next:]."""
    d, w_next, d_next, n_here, n_next = _u(d), _u(w_next), _u(d_next), _u(n_here), _u(n_next)
    lo, hi = _u(lo), _u(hi)
    width = _u(lanes(Dl.itemsize))
    for j0 in range(_u(0), n_here, width):
        w = min(width, n_here - j0)
        for s0 in range(lo, hi, _u(R)):
            tile(Dl, d + s0 * n_here + j0, n_here, Dl, _u(0), _u(0), _u(0),
                 Dl, d_next + s0 * n_next, n_next, _u(1), params, w_next + j0, n_here, n_next,
                 min(_u(R), hi - s0), w)


@njit(**JIT)
def grad_rows(grad, w, Dl, d, A, a_in, n, n_in, n_out, lo, hi):
    """gW[i, j] += sum_s d[s, i] a_in[s, j], samples in order, for rows i = lo..hi-1 of
    gW (n_out, n_in) at grad[w:]; d (n, n_out) at Dl[d:], a_in (n, n_in) at A[a_in:]."""
    w, d, a_in, n, n_in, n_out = _u(w), _u(d), _u(a_in), _u(n), _u(n_in), _u(n_out)
    lo, hi = _u(lo), _u(hi)
    width = _u(lanes(grad.itemsize))
    for j0 in range(_u(0), n_in, width):  # a_in's panel of these columns stays in cache
        cols = min(width, n_in - j0)
        for i0 in range(lo, hi, _u(R)):
            c = w + i0 * n_in + j0
            tile(grad, c, n_in, grad, c, n_in, _u(1), Dl, d + i0, _u(1), n_out,
                 A, a_in + j0, n_in, n, min(_u(R), hi - i0), cols)


@njit(**JIT)
def transpose(WT, wt, params, w, n_out, n_in):
    """WT[wt + j n_out + i] = W[i, j] for W (n_out, n_in) at params[w:], in 8 x 8 blocks
    (both sides touch whole cache lines)."""
    wt, w, n_out, n_in = _u(wt), _u(w), _u(n_out), _u(n_in)
    blk = _u(8)
    for i0 in range(_u(0), n_out, blk):
        i1 = min(i0 + blk, n_out)
        for j0 in range(_u(0), n_in, blk):
            j1 = min(j0 + blk, n_in)
            for i in range(i0, i1):
                for j in range(j0, j1):
                    WT[wt + j * n_out + i] = params[w + i * n_in + j]
