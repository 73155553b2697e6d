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

from fastbp._config import JIT_NO_NRT
from fastbp.kernels.loop_gemm import MR, VECTOR_BYTES

R = MR     # rows of a tile
U = 2      # vectors of lanes in a tile

_u = np.uint64


@register_jitable
def lanes(itemsize):
    """Lanes of a tile, U vectors of V elements of this size."""
    return U * VECTOR_BYTES // itemsize


class _Lanes:
    """LLVM IR for vectors of V lanes of one float dtype: the vector type, broadcasts,
    fused multiply-adds, loads and stores of whole or partial vectors, and the dispatch on
    how many whole vectors (and whether a partial one) a run of ``width`` lanes holds."""

    def __init__(self, context, builder, dtype):
        self.builder, self.dtype = builder, dtype
        self.V = VECTOR_BYTES // (dtype.bitwidth // 8)
        self.align = dtype.bitwidth // 8
        self.scalar_t = context.get_value_type(dtype)
        self.vec_t = ir.VectorType(self.scalar_t, self.V)
        self.vptr_t = self.vec_t.as_pointer()
        self.i32, self.i64 = ir.IntType(32), ir.IntType(64)
        mask_t = ir.VectorType(ir.IntType(1), self.V)
        mod = builder.module
        suffix = "f32" if dtype.bitwidth == 32 else "f64"
        self._fmuladd = cgutils.get_or_insert_function(
            mod, ir.FunctionType(self.vec_t, [self.vec_t] * 3),
            f"llvm.fmuladd.v{self.V}{suffix}")
        self._mload = cgutils.get_or_insert_function(
            mod, ir.FunctionType(self.vec_t, [self.vptr_t, self.i32, mask_t, self.vec_t]),
            f"llvm.masked.load.v{self.V}{suffix}.p0")
        self.zero = ir.Constant(self.vec_t, None)
        self._undef = ir.Constant(self.vec_t, ir.Undefined)
        self._splat0 = ir.Constant(ir.VectorType(self.i32, self.V), [0] * self.V)
        self.rem = self.mask = None

    def const(self, value):
        return ir.Constant(self.i64, value)

    def splat(self, x):
        """x (a scalar of the dtype) in every lane."""
        b = self.builder
        return b.shuffle_vector(b.insert_element(self._undef, x, ir.Constant(self.i32, 0)),
                                self._undef, self._splat0)

    def fma(self, a, x, c):
        """a * x + c, one rounding where the CPU has FMA (as vmath.madd)."""
        return self.builder.call(self._fmuladd, [a, x, c])

    def _address(self, ptr, u):
        return self.builder.bitcast(self.builder.gep(ptr, [self.const(u * self.V)]),
                                    self.vptr_t)

    def load(self, ptr, u, partial):
        """Vector u of the lanes at ptr; a partial one masked (lanes past the width are
        never read)."""
        if partial:
            return self.builder.call(self._mload, [self._address(ptr, u),
                                                   ir.Constant(self.i32, self.align),
                                                   self.mask, self.zero])
        return self.builder.load(self._address(ptr, u), align=self.align)

    def store(self, value, ptr, u, partial):
        """Vector u of the lanes to ptr; a partial one lane by lane (a masked store costs
        tens of cycles on some CPUs)."""
        b = self.builder
        if not partial:
            b.store(value, self._address(ptr, u), align=self.align)
            return
        for lane in range(self.V - 1):
            with b.if_then(b.icmp_unsigned("<", self.const(lane), self.rem)):
                b.store(b.extract_element(value, ir.Constant(self.i32, lane)),
                        b.gep(ptr, [self.const(u * self.V + lane)]))

    def dispatch(self, width, most, emit):
        """emit(kinds) once per shape a run of ``width`` (<= most * V) lanes can take --
        n_full whole vectors, then a partial one or not, ``kinds`` listing which is
        partial -- under a branch taken when the width has that shape: only the vectors
        that hold lanes are loaded, computed and stored."""
        b, V = self.builder, self.V
        n_full = b.udiv(width, self.const(V))
        self.rem = b.urem(width, self.const(V))
        lane = ir.Constant(ir.VectorType(self.i64, V), list(range(V)))
        v = b.insert_element(ir.Constant(ir.VectorType(self.i64, V), ir.Undefined), self.rem,
                             ir.Constant(self.i32, 0))
        self.mask = b.icmp_unsigned("<", lane, b.shuffle_vector(v, v, self._splat0))
        for full in range(most + 1):
            for partial in (0, 1):
                if not 0 < full + partial <= most:
                    continue
                here = b.and_(b.icmp_unsigned("==", n_full, self.const(full)),
                              b.icmp_unsigned("!=" if partial else "==", self.rem,
                                              self.const(0)))
                with b.if_then(here):
                    emit([False] * full + [True] * partial)


def _data(context, builder, signature, args, k):
    return context.make_array(signature.args[k])(context, builder, args[k]).data


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

    def codegen(context, builder, signature, args):
        (_, c_off, ldc_, _, i_off, irs_, init_, _, a_off, ar_, ak_, _, b_off, bk_, k_count,
         rows_, width_) = args
        v = _Lanes(context, builder, dtype)
        c_ptr, i_ptr, a_ptr, b_ptr = (_data(context, builder, signature, args, k)
                                      for k in (0, 3, 7, 11))
        # Rows past ``rows`` read the last row again (in bounds) and are never stored.
        last = builder.sub(rows_, v.const(1))
        row = [builder.select(builder.icmp_unsigned("<", v.const(r), rows_), v.const(r), last)
               for r in range(R)]
        a_rows = [builder.gep(a_ptr, [builder.add(a_off, builder.mul(row[r], ar_))])
                  for r in range(R)]
        sums = [[cgutils.alloca_once_value(builder, v.zero) for _ in range(U)]
                for _ in range(R)]

        def emit(kinds):
            with builder.if_then(builder.icmp_unsigned("!=", init_, v.const(0))):
                for r in range(R):
                    start = builder.gep(i_ptr, [builder.add(i_off, builder.mul(row[r], irs_))])
                    for u, part in enumerate(kinds):
                        builder.store(v.load(start, u, part), sums[r][u])
            with cgutils.for_range(builder, k_count) as loop:
                k = loop.index
                b_row = builder.gep(b_ptr, [builder.add(b_off, builder.mul(k, bk_))])
                b_vec = [v.load(b_row, u, part) for u, part in enumerate(kinds)]
                ka = builder.mul(k, ak_)
                for r in range(R):
                    x = v.splat(builder.load(builder.gep(a_rows[r], [ka])))
                    for u in range(len(kinds)):
                        builder.store(v.fma(x, b_vec[u], builder.load(sums[r][u])),
                                      sums[r][u])
            for r in range(R):
                with builder.if_then(builder.icmp_unsigned("<", v.const(r), rows_)):
                    start = builder.gep(c_ptr, [builder.add(c_off, builder.mul(v.const(r),
                                                                               ldc_))])
                    for u, part in enumerate(kinds):
                        v.store(builder.load(sums[r][u]), start, u, part)

        v.dispatch(width_, U, emit)
        return context.get_dummy_value()
    return sig, codegen


# -- the sweeps of online SGD: one sample's rows of a layer streaming past its lanes -------------
#
# The online kernel (loop_online) keeps each layer both as W (n_out, n_in) and as W^T, and
# per sample sweeps each once with plain SGD (w <- w - lr g, g = delta_i x_j, the batch
# path's update for a batch of one): over W^T's rows j with the outputs i in the lanes, the
# update and the next sample's forward sum; over W's rows i with the inputs j in the lanes,
# the delta sum and the update. The sums stay in registers while the rows stream past.

SWEEP_VECTORS = 4  # vectors of lanes a sweep keeps in registers (32 floats with AVX2)


@register_jitable
def sweep_lanes(itemsize):
    """Lanes a sweep takes at once."""
    return SWEEP_VECTORS * VECTOR_BYTES // itemsize


def _sweep(update, forward):
    @intrinsic
    def sweep_cols(typingctx, WT, wt, ld, K, width, Dl, o, S, s, neg_lr, Sn, sn, A, z):
        """Over rows k < K of W^T at WT[wt:] (row stride ld), lanes l < width: if update,
        W^T[k, l] <- W^T[k, l] + neg_lr (Dl[o + l] S[s + k]); if forward, A[z + l] <-
        A[z + l] + sum_k W^T[k, l] Sn[sn + k] with the updated rows, k in order (A[z:]
        holds the starting values, the biases)."""
        dtype = WT.dtype
        if not isinstance(dtype, types.Float):
            return None
        u64 = types.uint64
        sig = types.void(WT, u64, u64, u64, u64, Dl, u64, S, u64, dtype, Sn, u64, A, u64)

        def codegen(context, builder, signature, args):
            _, wt_, ld_, k_count, width_, _, o_, _, s_, neg_lr_, _, sn_, _, z_ = args
            v = _Lanes(context, builder, dtype)
            wt_ptr, d_ptr, s_ptr, sn_ptr, a_ptr = (
                _data(context, builder, signature, args, k) for k in (0, 5, 7, 10, 12))
            neg_lr = v.splat(neg_lr_)
            d_row = builder.gep(d_ptr, [o_])
            z_row = builder.gep(a_ptr, [z_])
            acc = [cgutils.alloca_once_value(builder, v.zero) for _ in range(SWEEP_VECTORS)]

            def emit(kinds):
                deltas = [v.load(d_row, u, part) for u, part in enumerate(kinds)] if update \
                    else None
                if forward:
                    for u, part in enumerate(kinds):
                        builder.store(v.load(z_row, u, part), acc[u])
                with cgutils.for_range(builder, k_count) as loop:
                    k = loop.index
                    row = builder.gep(wt_ptr, [builder.add(wt_, builder.mul(k, ld_))])
                    if update:
                        x = v.splat(builder.load(builder.gep(s_ptr, [builder.add(s_, k)])))
                    if forward:
                        xn = v.splat(builder.load(builder.gep(sn_ptr, [builder.add(sn_, k)])))
                    for u, part in enumerate(kinds):
                        w = v.load(row, u, part)
                        if update:
                            w = v.fma(neg_lr, builder.fmul(deltas[u], x), w)
                            v.store(w, row, u, part)
                        if forward:
                            builder.store(v.fma(w, xn, builder.load(acc[u])), acc[u])
                if forward:
                    for u, part in enumerate(kinds):
                        v.store(builder.load(acc[u]), z_row, u, part)

            v.dispatch(width_, SWEEP_VECTORS, emit)
            return context.get_dummy_value()
        return sig, codegen
    return sweep_cols


sweep_update_forward = _sweep(True, True)
sweep_update = _sweep(True, False)
sweep_forward = _sweep(False, True)


@intrinsic
def sweep_rows(typingctx, W, w, ld, K, width, Dl, o, S, s, neg_lr, dp):
    """Over rows k < K of W at W[w:] (row stride ld), lanes l < width: Dl[dp + l] = sum_k
    W[k, l] Dl[o + k], k in order, with each row as it was, then W[k, l] <- W[k, l] +
    neg_lr (Dl[o + k] S[s + l])."""
    dtype = W.dtype
    if not isinstance(dtype, types.Float):
        return None
    u64 = types.uint64
    sig = types.void(W, u64, u64, u64, u64, Dl, u64, S, u64, dtype, u64)

    def codegen(context, builder, signature, args):
        _, w_, ld_, k_count, width_, _, o_, _, s_, neg_lr_, dp_ = args
        v = _Lanes(context, builder, dtype)
        w_ptr, d_ptr, s_ptr = (_data(context, builder, signature, args, k) for k in (0, 5, 7))
        neg_lr = v.splat(neg_lr_)
        a_row = builder.gep(s_ptr, [s_])
        dp_row = builder.gep(d_ptr, [dp_])
        acc = [cgutils.alloca_once_value(builder, v.zero) for _ in range(SWEEP_VECTORS)]

        def emit(kinds):
            inputs = [v.load(a_row, u, part) for u, part in enumerate(kinds)]
            for u in range(len(kinds)):
                builder.store(v.zero, acc[u])
            with cgutils.for_range(builder, k_count) as loop:
                k = loop.index
                row = builder.gep(w_ptr, [builder.add(w_, builder.mul(k, ld_))])
                d = v.splat(builder.load(builder.gep(d_ptr, [builder.add(o_, k)])))
                for u, part in enumerate(kinds):
                    wv = v.load(row, u, part)
                    builder.store(v.fma(wv, d, builder.load(acc[u])), acc[u])
                    v.store(v.fma(neg_lr, builder.fmul(inputs[u], d), wv), row, u, part)
            for u, part in enumerate(kinds):
                v.store(builder.load(acc[u]), dp_row, u, part)

        v.dispatch(width_, SWEEP_VECTORS, emit)
        return context.get_dummy_value()
    return sig, codegen


# -- the three products of a layer, tile by tile ------------------------------------------------

@njit(**JIT_NO_NRT)
def forward_rows(A, z, params, b, WT, wt, a_in, n_in, n_out, lo, hi):
    """z[s, i] = b_i + sum_j a_in[s, j] WT[j, i] for samples lo..hi-1 (no activation):
    z (n, n_out) at A[z:], a_in (n, n_in) at A[a_in:], b at params[b:], WT (n_in, n_out)
    at WT[wt:]."""
    _product_rows(A, z, n_out, params, b, 1, A, a_in, n_in, WT, wt, lo, hi)


@njit(**JIT_NO_NRT)
def delta_rows(Dl, d, params, w_next, d_next, n_here, n_next, lo, hi):
    """d[s, j] = sum_i d_next[s, i] W_next[i, j] for samples lo..hi-1 (before act'):
    d (n, n_here) at Dl[d:], d_next (n, n_next) at Dl[d_next:], W_next (n_next, n_here)
    at params[w_next:]."""
    _product_rows(Dl, d, n_here, Dl, 0, 0, Dl, d_next, n_next, params, w_next, lo, hi)


@njit(**JIT_NO_NRT)
def _product_rows(C, c, n_cols, I, i, init, X, x, k, Y, y, lo, hi):
    """C[s, t] = I_t + sum_q X[s, q] Y[q, t] for rows s = lo..hi-1, q in order, where
    I_t = I[i + t] if init else 0: C (n, n_cols) at C[c:], X (n, k) at X[x:], Y (k, n_cols)
    at Y[y:]. Column panels of one vector's width outside, so Y's panel stays in L1."""
    c, n_cols, i, init, x, k, y = _u(c), _u(n_cols), _u(i), _u(init), _u(x), _u(k), _u(y)
    lo, hi = _u(lo), _u(hi)
    width = _u(lanes(C.itemsize))
    for t0 in range(_u(0), n_cols, width):
        w = min(width, n_cols - t0)
        for s0 in range(lo, hi, _u(R)):
            tile(C, c + s0 * n_cols + t0, n_cols, I, i + t0 * init, _u(0), init,
                 X, x + s0 * k, k, _u(1), Y, y + t0, n_cols, k, min(_u(R), hi - s0), w)


@njit(**JIT_NO_NRT)
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


@intrinsic
def transpose_block(typingctx, D, d, ldd, S, s, lds):
    """D[d + j ldd + i] = S[s + i lds + j] for i, j < V: one V x V block (V lanes of a
    vector) transposed in registers -- V loads, V log2(V) shuffles, V stores, where the
    scalar form makes V^2 strided moves. Offsets and strides are unsigned integers."""
    dtype = D.dtype
    if not isinstance(dtype, types.Float) or S.dtype != dtype:
        return None
    u64 = types.uint64
    sig = types.void(D, u64, u64, S, u64, u64)

    def codegen(context, builder, signature, args):
        _, d_, ldd_, _, s_, lds_ = args
        v = _Lanes(context, builder, dtype)
        V, half = v.V, v.V // 2
        d_ptr, s_ptr = (_data(context, builder, signature, args, k) for k in (0, 3))
        rows = [v.load(builder.gep(s_ptr, [builder.add(s_, builder.mul(v.const(i), lds_))]),
                       0, False) for i in range(V)]
        # log2(V) perfect shuffles of the rows (i with i + V/2) make the transpose.
        lo = ir.Constant(ir.VectorType(v.i32, V), [x for p in range(half) for x in (p, V + p)])
        hi = ir.Constant(ir.VectorType(v.i32, V),
                         [x for p in range(half, V) for x in (p, V + p)])
        for _ in range(V.bit_length() - 1):
            rows = [builder.shuffle_vector(rows[i], rows[i + half], mask)
                    for i in range(half) for mask in (lo, hi)]
        for j in range(V):
            v.store(rows[j], builder.gep(d_ptr, [builder.add(d_, builder.mul(v.const(j), ldd_))]),
                    0, False)
        return context.get_dummy_value()
    return sig, codegen


@njit(**JIT_NO_NRT)
def transpose(WT, wt, params, w, n_out, n_in):
    """WT[wt + j n_out + i] = W[i, j] for W (n_out, n_in) at params[w:]: whole V x V
    blocks in registers (transpose_block), the edges element by element."""
    wt, w, n_out, n_in = _u(wt), _u(w), _u(n_out), _u(n_in)
    blk = _u(VECTOR_BYTES // WT.itemsize)
    i_full, j_full = n_out - n_out % blk, n_in - n_in % blk
    for i0 in range(_u(0), i_full, blk):
        for j0 in range(_u(0), j_full, blk):
            transpose_block(WT, wt + j0 * n_out + i0, n_out, params, w + i0 * n_in + j0, n_in)
        for i in range(i0, i0 + blk):
            for j in range(j_full, n_in):
                WT[wt + j * n_out + i] = params[w + i * n_in + j]
    for i in range(i_full, n_out):
        for j in range(n_in):
            WT[wt + j * n_out + i] = params[w + i * n_in + j]
