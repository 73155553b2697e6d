"""Packed, register-blocked matrix products for large batches on the CPU.

The blocked loop kernels of ``loop_layers`` leave the vectorizing to LLVM, which turns their
inner loop over j into sums across vector lanes; at large batches on wide layers they reach
about half of BLAS. This is the BLAS way, still loops: pack a panel of one operand into
MR-row strips and of the other into NR-column strips, contiguous in the order the
micro-kernel reads them, then for each MR x NR tile of the product keep all MR x NR sums in
vector registers while the packed strips stream past -- one broadcast of A and NR / W
vector loads of B per MR x NR / W fused multiply-adds.

Numba cannot be told to keep a tile of sums in registers, so the micro-kernel is an
``@intrinsic`` that writes the LLVM IR itself: <W x float> accumulators, vector loads of the
packed B strip, a broadcast of packed A, llvm.fma. Tile sizes follow the vector width of
the CPU Numba compiles for: 8 x 32 floats in 16 zmm registers with AVX-512, 6 x 16 in 12
ymm with AVX2 (float64: half the columns).

    gemm(C, c, A, a, a_trans, B, b, b_trans, M, N, K, accumulate, work)
        C[c:] (M, N) (+)= op(A) @ op(B), op(A) (M, K) from A[a:] (a_trans: stored (K, M)),
        op(B) (K, N) from B[b:] (b_trans: stored (N, K)); work from work_for().

The three products of a layer then need no transposed copies:
    forward   z = a_in @ W^T           gemm(A, z, A, a_in, False, params, w, True,  n, out, in)
    delta     d = d_next @ W_next      gemm(Dl, d, Dl, d_next, False, params, w, False, n, in, out)
    gradient  gW += delta^T @ a_in     gemm(grad, w, Dl, d, True, A, a_in, False, out, in, n)

The passes of loop_layers call gemm_if_pays: the serial gemm, or gemm_threads (strips of
columns per thread, the same sums bit for bit) when they run threaded, and nothing --
not even compiled -- when work_for gave None.
"""
import numba
import numpy as np
from llvmlite import binding, ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from fastbp._config import JIT, JIT_NO_NRT

_u = np.uint64


def _vector_bytes():
    """64 with AVX-512 in the features Numba compiles for, else 32."""
    features = numba.config.CPU_FEATURES or binding.get_host_cpu_features().flatten()
    return 64 if "+avx512f" in features.split(",") else 32


VECTOR_BYTES = _vector_bytes()
MR = 8 if VECTOR_BYTES == 64 else 6   # rows of a tile: MR x 2 vector accumulators in registers
KC = 256   # depth of a packed panel: A strip (MR x KC) in L1, B panel (KC x N) in L2
# Rows of A packed at once: whole strips, so that a block of rows packed at a multiple of MR
# ends within the next block (6 does not divide 128: 132 rows would overrun it).
MC = 128 // MR * MR


def nr(itemsize):
    """Columns of a tile: two vectors."""
    return 2 * VECTOR_BYTES // itemsize


@intrinsic
def _micro(typingctx, Ct, Ap, a_off, Bp, b_off, kc):
    """Ct[r * NR + c] += sum_k Ap[a_off + k MR + r] * Bp[b_off + k NR + c], k in order, one
    multiply-add at a time: an MR x NR tile, NR = two vectors of Ct's dtype."""
    dtype = Ct.dtype
    if not isinstance(dtype, types.Float):
        return None
    width = VECTOR_BYTES // (dtype.bitwidth // 8)
    n_vec, rows, cols = 2, MR, 2 * width
    sig = types.void(Ct, Ap, types.uint64, Bp, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        ct, ap, aoff, bp, boff, depth = args
        scalar_t = context.get_value_type(dtype)
        vec_t = ir.VectorType(scalar_t, width)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        c_ptr = context.make_array(signature.args[0])(context, builder, ct).data
        a_ptr = builder.gep(context.make_array(signature.args[1])(context, builder, ap).data, [aoff])
        b_ptr = builder.gep(context.make_array(signature.args[3])(context, builder, bp).data, [boff])
        # The sums start from the tile as it is: a panel continues the sum where the last
        # one left it (the order of the plain loops, see loop_tiles).
        sums = [[cgutils.alloca_once_value(builder, builder.load(
                    builder.bitcast(builder.gep(c_ptr, [ir.Constant(i64, r * cols + v * width)]),
                                    vec_t.as_pointer()), align=dtype.bitwidth // 8))
                 for v in range(n_vec)] for r in range(rows)]
        undef = ir.Constant(vec_t, ir.Undefined)
        splat = ir.Constant(ir.VectorType(i32, width), [0] * width)
        # fmuladd: fused exactly where the plain loops' contracted a * b + c is.
        suffix = "f32" if dtype.bitwidth == 32 else "f64"
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vec_t, [vec_t, vec_t, vec_t]),
            f"llvm.fmuladd.v{width}{suffix}")
        with cgutils.for_range(builder, depth) as loop:
            k = loop.index
            b_row = builder.gep(b_ptr, [builder.mul(k, ir.Constant(i64, cols))])
            b_vec = [builder.load(builder.bitcast(builder.gep(b_row, [ir.Constant(i64, v * width)]),
                                                  vec_t.as_pointer()), align=dtype.bitwidth // 8)
                     for v in range(n_vec)]
            a_row = builder.gep(a_ptr, [builder.mul(k, ir.Constant(i64, rows))])
            for r in range(rows):
                a = builder.load(builder.gep(a_row, [ir.Constant(i64, r)]))
                a_vec = builder.shuffle_vector(builder.insert_element(undef, a, ir.Constant(i32, 0)),
                                               undef, splat)
                for v in range(n_vec):
                    builder.store(builder.call(fma, [a_vec, b_vec[v], builder.load(sums[r][v])]),
                                  sums[r][v])
        for r in range(rows):
            for v in range(n_vec):
                p = builder.gep(c_ptr, [ir.Constant(i64, r * cols + v * width)])
                builder.store(builder.load(sums[r][v]), builder.bitcast(p, vec_t.as_pointer()),
                              align=dtype.bitwidth // 8)
        return context.get_dummy_value()
    return sig, codegen


@njit(**JIT_NO_NRT)
def _pack_a(Ap, ap, A, a, a_trans, M, K, i0, i1, p0, p1):
    """Ap[ap + strip KC MR + k MR + r] = op(A)(i0 + strip MR + r, p0 + k); rows past i1
    are 0. Strips sit KC MR apart whatever the panel's depth (see _tiles)."""
    mr = _u(MR)
    kc = p1 - p0
    for strip in range((i1 - i0 + mr - _u(1)) // mr):
        base = ap + strip * _u(KC) * mr
        for r in range(mr):
            s = i0 + strip * mr + r
            if s >= i1:
                for k in range(kc):
                    Ap[base + k * mr + r] = 0
            elif a_trans:
                for k in range(kc):
                    Ap[base + k * mr + r] = A[a + (p0 + k) * M + s]
            else:
                row = a + s * K + p0
                for k in range(kc):
                    Ap[base + k * mr + r] = A[row + k]


@njit(**JIT_NO_NRT)
def _pack_b(Bp, bp, B, b, b_trans, N, K, p0, p1, strip0, strip1):
    """Bp[bp + strip KC NR + k NR + c] = op(B)(p0 + k, strip NR + c) for strips
    strip0..strip1-1; columns past N are 0. Strips sit KC NR apart whatever the panel's
    depth (see _tiles)."""
    cols = _u(2 * VECTOR_BYTES // B.itemsize)
    kc = p1 - p0
    for strip in range(strip0, strip1):
        base = bp + strip * _u(KC) * cols
        if b_trans:  # op(B)(k, i) = B[i K + k]: rows of B, written NR apart
            for c in range(cols):
                i = strip * cols + c
                if i < N:
                    row = b + i * K + p0
                    for k in range(kc):
                        Bp[base + k * cols + c] = B[row + k]
                else:
                    for k in range(kc):
                        Bp[base + k * cols + c] = 0
        else:        # op(B)(k, i) = B[k N + i]: NR-wide contiguous copies
            for k in range(kc):
                row = b + (p0 + k) * N + strip * cols
                for c in range(cols):
                    if strip * cols + c < N:
                        Bp[base + k * cols + c] = B[row + c]
                    else:
                        Bp[base + k * cols + c] = 0


# The work array (work_for): the packed B panel, KC x N rounded up to whole strips; then the
# packed rows of op(A), KC x M rounded up to whole strips; then MR x NR tiles of sums, one
# per slot (a block of rows, or a thread), so that slots may run on threads side by side.
#
# Every strip has a fixed place, KC deep, whatever the depth kc <= KC of the panel being
# packed: where a strip lives must not depend on the panel. gemm_threads' threads move from
# panel to panel without waiting for each other, so with strips placed kc apart a thread
# packing the shorter last panel of K would write into strips another thread, still on a
# full panel, was reading (wrong sums whenever K > KC is not a multiple of KC).

@njit(**JIT_NO_NRT)
def _pack_rows(work, A, a, a_trans, M, N, K, p0, p1, i0, i1, at):
    """Pack rows i0..i1 of op(A) for the panel p0..p1 into the packed-rows part of work,
    row i0's strip at row position ``at`` (a multiple of MR)."""
    cols = _u(2 * VECTOR_BYTES // work.itemsize)
    ap = (N + cols - _u(1)) // cols * cols * _u(KC) + at * _u(KC)
    _pack_a(work, ap, A, a, a_trans, M, K, i0, i1, p0, p1)


@njit(**JIT_NO_NRT)
def _tiles(C, c, M, N, work, p0, p1, i0, i1, at, strip0, strip1, slot):
    """C += the panel p0..p1 of the sum over k for rows i0..i1 (packed by _pack_rows at row
    position ``at``) and column strips strip0..strip1 of C, through tile ``slot``: each
    tile of C is loaded, continued by the micro-kernel, and stored back."""
    mr = _u(MR)
    cols = _u(2 * VECTOR_BYTES // C.itemsize)
    kc = p1 - p0
    ap = (N + cols - _u(1)) // cols * cols * _u(KC)
    ct = ap + (M + mr - _u(1)) // mr * mr * _u(KC) + slot * mr * cols
    Ct = work[ct:ct + mr * cols]
    ap += (at - i0) * _u(KC)  # the strip of rows s..s+MR-1 at ap + s KC
    for j0 in range(strip0 * cols, min(strip1 * cols, N), cols):
        nj = min(cols, N - j0)
        for s0 in range(i0, i1, mr):
            ni = min(mr, i1 - s0)
            for r in range(mr):
                row = c + (s0 + r) * N + j0
                for col in range(cols):
                    Ct[r * cols + col] = C[row + col] if r < ni and col < nj else 0
            _micro(Ct, work, ap + s0 * _u(KC), work, j0 * _u(KC), kc)
            for r in range(ni):
                row = c + (s0 + r) * N + j0
                for col in range(nj):
                    C[row + col] = Ct[r * cols + col]


@njit(**JIT_NO_NRT)
def gemm(C, c, A, a, a_trans, B, b, b_trans, M, N, K, accumulate, work):
    """C[c:] (M, N) (+)= op(A) @ op(B): see the module docstring. Each element is its
    starting value (0 unless accumulate) plus the terms k = 0..K-1 in order, as the plain
    loops sum it: the same numbers whatever calls it, gemm_threads included."""
    c, a, b, M, N, K = _u(c), _u(a), _u(b), _u(M), _u(N), _u(K)
    cols = _u(2 * VECTOR_BYTES // C.itemsize)
    strips = (N + cols - _u(1)) // cols
    if not accumulate:
        _zero(C, c, M * N)
    for p0 in range(_u(0), K, _u(KC)):
        p1 = min(p0 + _u(KC), K)
        _pack_b(work, _u(0), B, b, b_trans, N, K, p0, p1, _u(0), strips)
        for i0 in range(_u(0), M, _u(MC)):
            i1 = min(i0 + _u(MC), M)
            _pack_rows(work, A, a, a_trans, M, N, K, p0, p1, i0, i1, i0)
            _tiles(C, c, M, N, work, p0, p1, i0, i1, i0, _u(0), strips, _u(0))


@njit(**JIT_NO_NRT)
def _zero(C, c, count):
    for k in range(_u(c), _u(c) + _u(count)):
        C[k] = 0


@njit(**JIT_NO_NRT)
def gemm_serial(C, c, A, a, a_trans, B, b, b_trans, M, N, K, accumulate, work, threads):
    """gemm, with gemm_threads' arguments (threads: None)."""
    gemm(C, c, A, a, a_trans, B, b, b_trans, M, N, K, accumulate, work)


@njit(**JIT_NO_NRT)
def thread_plan(M, N, itemsize, threads):
    """How gemm_threads splits C (M, N) over ``threads`` threads: (T, per_thread, mc) --
    the T threads that get work, each owning per_thread strips of NR columns, and packing
    mc rows of op(A) at a time (whole MR strips) into its own part of work."""
    mr = _u(MR)
    cols = _u(2 * VECTOR_BYTES) // _u(itemsize)
    strips = (_u(N) + cols - _u(1)) // cols
    rows = (_u(M) + mr - _u(1)) // mr * mr  # the packed-rows part of work holds this many
    T = min(_u(threads), strips, rows // mr)
    per_thread = (strips + T - _u(1)) // T
    mc = min(_u(MC), rows // T // mr * mr)  # T mc <= rows: the threads' parts are disjoint
    return T, per_thread, mc


@njit(**JIT_NO_NRT)
def thread_panel(C, c, A, a, a_trans, B, b, b_trans, M, N, K, accumulate, work, t, T, p0):
    """Thread t's share of gemm_threads for the panel p0..p0+KC of the sum over k: it packs
    its strips of the B panel and, mc rows at a time, op(A) into its own part of work, then
    adds their tiles to its columns of C. Threads share no part of work and no element of
    C, and every strip of work has a place that does not depend on the panel (_pack_a), so
    the threads need not wait for each other between panels: any interleaving of the
    threads' panels gives gemm's numbers (tests/test_gemm.py runs them in every order)."""
    c, a, b, M, N, K, t, p0 = _u(c), _u(a), _u(b), _u(M), _u(N), _u(K), _u(t), _u(p0)
    cols = _u(2 * VECTOR_BYTES // C.itemsize)
    strips = (N + cols - _u(1)) // cols
    _, per_thread, mc = thread_plan(M, N, C.itemsize, T)
    strip0 = t * per_thread
    strip1 = min(strip0 + per_thread, strips)
    at = t * mc
    p1 = min(p0 + _u(KC), K)
    if p0 == _u(0) and not accumulate:  # the thread's own columns start from 0
        for i in range(M):
            for col in range(strip0 * cols, min(strip1 * cols, N)):
                C[c + i * N + col] = 0
    _pack_b(work, _u(0), B, b, b_trans, N, K, p0, p1, strip0, strip1)
    for i0 in range(_u(0), M, mc):
        i1 = min(i0 + mc, M)
        _pack_rows(work, A, a, a_trans, M, N, K, p0, p1, i0, i1, at)
        _tiles(C, c, M, N, work, p0, p1, i0, i1, at, strip0, strip1, t)


@njit(parallel=True, **JIT)
def gemm_threads(C, c, A, a, a_trans, B, b, b_trans, M, N, K, accumulate, work, threads):
    """gemm on threads[0] of Numba's threads, in one parallel region: each thread owns
    strips of columns of C, packs its part of each B panel (which then stays in its core's
    cache) and packs blocks of rows of op(A) into its own part of work (thread_panel).
    Each C element is summed exactly as gemm sums it."""
    T = thread_plan(M, N, C.itemsize, threads[0])[0]
    for t in numba.prange(T):
        for p0 in range(0, K, KC):
            thread_panel(C, c, A, a, a_trans, B, b, b_trans, M, N, K, accumulate, work, t, T,
                         p0)


# Multiply-adds from which the packed products beat the register tiles of loop_tiles,
# which read their operands in place. One forward product, one thread, float32, on an
# AVX2 EPYC (python dev/layer_rates.py): tiles 81 GFLOP/s against gemm's 50 at 0.5M
# multiply-adds, 76 against 70 at 4M, the two within noise of each other from there to
# about 25M, gemm ahead on wide layers where its cache blocking pays (60 against 50 at
# 64M, 56 against 39 at 98M). Below it gemm is not even compiled (work_for), which saves
# seconds of a first run.
MIN_WORK = 1 << 22


def _pays(M, N, K):
    """Whether gemm beats the register tiles on this product: a tile of rows and of
    columns fills (a narrow output, such as 10 classes, stays with the tiles) and the work
    (at least MIN_WORK multiply-adds) pays for the packing."""
    return M >= MR and N >= 2 * VECTOR_BYTES // 8 and K >= 16 and M * N * K >= MIN_WORK


pays = njit(**JIT_NO_NRT)(_pays)


def work_for(sizes, like, n, min_work=0):
    """gemm's work array for the products of a network with these layer sizes over n
    samples, in the dtype of ``like``; None when gemm pays for none of them, or none has
    min_work multiply-adds. The passes of loop_layers compile without gemm for None:
    small networks never compile it (about 5 s of a cold start)."""
    sizes = [int(d) for d in sizes]
    products = []
    for m in range(1, len(sizes)):  # forward (n, D[m], D[m-1]), gradient (D[m], D[m-1], n)
        products += [(n, sizes[m], sizes[m - 1]), (sizes[m], sizes[m - 1], n)]
        if m < len(sizes) - 1:      # delta (n, D[m], D[m+1])
            products.append((n, sizes[m], sizes[m + 1]))
    used = any(_pays(M, N, K) and M * N * K >= min_work for M, N, K in products)
    return work_array(max(sizes), like, n) if used else None


def work_array(widest, like, n):
    """gemm's work array, in the dtype of ``like``, for any product whose sides are at
    most ``widest`` (N and K) and ``max(n, widest)`` (M), whether gemm pays for it or not."""
    cols, widest = nr(like.itemsize), int(widest)
    rows = max(int(n), widest) + MR  # M of any product, rounded up to whole strips
    return np.empty((widest + cols - 1) // cols * cols * KC + rows * KC + rows * cols,
                    like.dtype)


def gemm_if_pays(work, tag, C, c, A, a, a_trans, B, b, b_trans, M, N, K, accumulate):
    """gemm (gemm_threads with a tag) when work is an array and gemm pays for this
    product; returns whether it ran."""
    raise NotImplementedError("compiled code only")


@overload(gemm_if_pays, target="cpu", jit_options=JIT_NO_NRT)
def _gemm_if_pays(work, tag, C, c, A, a, a_trans, B, b, b_trans, M, N, K, accumulate):
    if isinstance(work, types.NoneType):
        return lambda work, tag, C, c, A, a, a_trans, B, b, b_trans, M, N, K, accumulate: False
    run = gemm_serial if isinstance(tag, types.NoneType) else gemm_threads

    def impl(work, tag, C, c, A, a, a_trans, B, b, b_trans, M, N, K, accumulate):
        if not pays(M, N, K):
            return False
        run(C, c, A, a, a_trans, B, b, b_trans, M, N, K, accumulate, work, tag)
        return True
    return impl
