"""Per-layer numba.cuda kernels: register-blocked tiles, each thread R x R outputs.

Arrays are the flat buffers of the backend contract (``fastbp.kernels``) on the device;
a kernel finds its layer through offsets (``_Net`` in ``cuda.py``). The three products of
a layer -- forward z = a_in W^T, delta d = d_next W_next, gradient gW = d^T a_in -- are one
tiled product (``cuda_tiles.block_product``) fed through strides: a block of TILE x TILE threads
computes a (TILE R) x (TILE R) tile of outputs, each thread the R x R of them at rows
ty + a TILE and columns tx + b TILE, in registers; operands pass through shared memory
in slices of TILE along the summed index, loaded with whichever index is contiguous on
threadIdx.x (coalesced), stored transposed into rows of odd stride (no bank conflicts).
Output columns -- the contiguous index of what is written (i of z, j of delta and of
gW) -- run along threadIdx.x, so a warp writes neighbouring addresses.

Index arithmetic is unsigned 64-bit (``_u``): no negative-index wrap-around, no sign
extension, and no division anywhere in a kernel body (2-D grids instead). The ``launch_*``
functions at the end are the host side.
"""
import math
from typing import NamedTuple

import numpy as np

from fastbp.kernels import cuda_config as config
from fastbp.kernels import scalar
from fastbp.kernels.codes import SIGMOID, SOFTMAX
from fastbp.kernels.cuda_config import cdiv, cuda, jit, launch
from fastbp.kernels.cuda_tiles import R, block_product

_FLOAT64 = np.dtype(np.float64)  # an instance: the simulator's shared arrays need itemsize
_u = np.uint64
_R, _0, _1 = _u(R), _u(0), _u(1)  # the tile side and the unsigned constants
device = jit(device=True)


# -- kernels ----------------------------------------------------------------------------------

@jit(cache=True)
def _forward_layer(A, params, w, a_in, a_out, n, n_in, n_out, code):
    """z_si = sum_j W_ij * a_in_sj + b_i, a_si = act(z_si) (softmax: left as z, see
    _softmax_rows and _cost_delta_rows).

    A       (>= n * sum(D),)  a_in (n, n_in) at A[a_in:], a (n, n_out) written at A[a_out:]
    params  (P,)              W (n_out, n_in) at params[w:], b right after it

    Block tile: samples s on the rows (threadIdx.y), outputs i on the columns (threadIdx.x).
    """
    tiles = cuda.shared.array(0, A.dtype)
    acc = cuda.local.array((R, R), A.dtype)
    one = A.dtype.type(1)
    w, a_in, a_out, n, n_in, n_out = _u(w), _u(a_in), _u(a_out), _u(n), _u(n_in), _u(n_out)
    t, tx, ty = _u(cuda.blockDim.x), _u(cuda.threadIdx.x), _u(cuda.threadIdx.y)
    s0, i0 = _u(cuda.blockIdx.y) * t * _R, _u(cuda.blockIdx.x) * t * _R
    b = w + n_out * n_in
    for c in range(_R):  # the bias first: the loop kernels' order of summation
        i = i0 + tx + c * t
        bias = params[b + i] if i < n_out else one - one
        for a in range(_R):
            acc[a, c] = bias
    block_product(acc, tiles, A, a_in, n_in, _1, s0, n, params, w, n_in, _1, i0, n_out, False,
                   _0, n_in, one)
    for a in range(_R):
        s = s0 + ty + a * t
        for c in range(_R):
            i = i0 + tx + c * t
            if s < n and i < n_out:
                z = acc[a, c]
                A[a_out + s * n_out + i] = z if code == SOFTMAX else scalar.activate(code, z, one)


@jit(cache=True)
def _softmax_rows(A, off, n, n_out):
    """a = softmax(z) per sample, one thread per sample; z (n, n_out) at A[off:]."""
    s = cuda.grid(1)
    if s < n:
        scalar.softmax_row(A, off + s * n_out, n_out, A.dtype.type(1))


@jit(cache=True)
def _cost_rows(cost, A, Y, off, n, n_out, binary, loss):
    """cost_s = C(a[L]_s, y_s), one thread per sample; a[L] (n, n_out) at A[off:]."""
    s = cuda.grid(1)
    if s < n:
        cost[s] = scalar.row_cost(A, off + s * n_out, Y, s, n_out, binary, loss)


@jit(cache=True)
def _output_delta_rows(Dl, A, Y, sw, off, n, n_out, code, loss):
    """delta[L]_s from a[L]_s and y_s, times sw_s (sw empty: 1), one thread per sample;
    both (n, n_out) at [off:]."""
    s = cuda.grid(1)
    if s < n:
        row = off + s * n_out
        scalar.output_delta_row(Dl, row, A, row, Y, s, n_out, code, loss, A.dtype.type(1))
        if sw.shape[0]:
            for i in range(row, row + n_out):
                Dl[i] *= sw[s]


@jit(cache=True)
def _cost_delta_rows(cost, Dl, A, Y, sw, off, n, n_out, code, binary, loss):
    """_softmax_rows (for a softmax output), _cost_rows and _output_delta_rows in one
    launch (train_epoch), the cost weighted too."""
    s = cuda.grid(1)
    if s < n:
        row = off + s * n_out
        if code == SOFTMAX:
            scalar.softmax_row(A, row, n_out, A.dtype.type(1))
        cost[s] = scalar.row_cost(A, row, Y, s, n_out, binary, loss)
        scalar.output_delta_row(Dl, row, A, row, Y, s, n_out, code, loss, A.dtype.type(1))
        if sw.shape[0]:
            cost[s] *= sw[s]
            for i in range(row, row + n_out):
                Dl[i] *= sw[s]


@jit(cache=True)
def _delta_layer(Dl, A, params, w_next, off, off_next, n, n_here, n_next, code):
    """d_sj = act'(a_sj) * sum_i W_next_ij * d_next_si.

    Dl      d (n, n_here) written at Dl[off:], d_next (n, n_next) at Dl[off_next:]
    A       a (n, n_here) at A[off:]
    params  W_next (n_next, n_here) at params[w_next:], as used in the forward pass

    Block tile: samples s on the rows (threadIdx.y), units j on the columns (threadIdx.x).
    """
    tiles = cuda.shared.array(0, A.dtype)
    acc = cuda.local.array((R, R), A.dtype)
    one = A.dtype.type(1)
    w_next, off, off_next = _u(w_next), _u(off), _u(off_next)
    n, n_here, n_next = _u(n), _u(n_here), _u(n_next)
    t, tx, ty = _u(cuda.blockDim.x), _u(cuda.threadIdx.x), _u(cuda.threadIdx.y)
    s0, j0 = _u(cuda.blockIdx.y) * t * _R, _u(cuda.blockIdx.x) * t * _R
    for a in range(_R):
        for c in range(_R):
            acc[a, c] = one - one
    block_product(acc, tiles, Dl, off_next, n_next, _1, s0, n, params, w_next, _1, n_here, j0,
                   n_here, False, _0, n_next, one)
    for a in range(_R):
        s = s0 + ty + a * t
        for c in range(_R):
            j = j0 + tx + c * t
            if s < n and j < n_here:
                k = off + s * n_here + j
                Dl[k] = acc[a, c] * scalar.derivative(code, A[k], one)


@jit(cache=True)
def _grad_layer(out, Dl, A, out_off, stride, d_off, a_off, n, chunk, n_in, n_out, keep):
    """gW_ij (+)= sum_s d_si * a_in_sj,  gb_i (+)= sum_s d_si  (keep: add, else overwrite),
    the samples split in chunks of ``chunk``, chunk z = blockIdx.z.

    out   gW (n_out, n_in) at out[out_off + z stride:], gb right after it: the gradient
          (stride 0, one chunk) or chunk z's partial sums (reduced by _sum_parts)
    Dl    d (n, n_out) at Dl[d_off:]
    A     a_in (n, n_in) at A[a_off:]

    Block tile: rows i of W on the rows (threadIdx.y), columns j on the columns
    (threadIdx.x); column j = n_in is the bias, as if a_in had a last column of ones.
    """
    tiles = cuda.shared.array(0, A.dtype)
    acc = cuda.local.array((R, R), A.dtype)
    one = A.dtype.type(1)
    out_off, stride, d_off, a_off = _u(out_off), _u(stride), _u(d_off), _u(a_off)
    n, chunk, n_in, n_out = _u(n), _u(chunk), _u(n_in), _u(n_out)
    t, tx, ty = _u(cuda.blockDim.x), _u(cuda.threadIdx.x), _u(cuda.threadIdx.y)
    i0, j0, z = _u(cuda.blockIdx.y) * t * _R, _u(cuda.blockIdx.x) * t * _R, _u(cuda.blockIdx.z)
    k_lo = z * chunk
    k_hi = min(k_lo + chunk, n)
    for a in range(_R):
        for c in range(_R):
            acc[a, c] = one - one
    block_product(acc, tiles, Dl, d_off, _1, n_out, i0, n_out, A, a_off, _1, n_in, j0, n_in,
                   True, k_lo, k_hi, one)
    base = out_off + z * stride
    for a in range(_R):
        i = i0 + ty + a * t
        for c in range(_R):
            j = j0 + tx + c * t
            if i < n_out and j <= n_in:
                g = base + i * n_in + j if j < n_in else base + n_out * n_in + i
                out[g] = out[g] + acc[a, c] if keep else acc[a, c]


@device
def _layer_gradient(grad, parts, split, sizes, k):
    """(the summed gradient of parameter k, whether it is a weight, whether its layer is
    split): grad[k], or for a layer whose gradient _grad_layer left in chunks (split[m-1] =
    (chunks, offset of its partial sums in parts), chunks > 1) the sum of the chunks in
    chunk order (fixed: the result does not depend on timing)."""
    p = 0
    g = grad.dtype.type(0)
    weight, chunked = False, False
    for m in range(1, sizes.shape[0]):
        n_w = sizes[m] * sizes[m - 1]
        size = n_w + sizes[m]
        if k < p + size:
            chunks = split[m - 1, 0]
            chunked = chunks > 1
            if chunked:
                at = split[m - 1, 1] + k - p
                for z in range(chunks):
                    g += parts[at + z * size]
            else:
                g = grad[k]
            weight = k < p + n_w
            break
        p += size
    return g, weight, chunked


@jit(cache=True)
def _sum_parts(grad, parts, split, sizes, keep):
    """grad[k] (+)= the sum of the chunks' partial gradients, for the parameters of every
    layer split in chunks (``_layer_gradient``): one launch for all layers, one thread per
    parameter."""
    k = cuda.grid(1)
    if k < grad.shape[0]:
        g, _, chunked = _layer_gradient(grad, parts, split, sizes, k)
        if chunked:
            grad[k] = grad[k] + g if keep else g


@jit(cache=True)
def _update_params(params, state, grad, parts, split, sizes, scales, b, opt, lr, momentum,
                   nesterov, l2, step_size, beta1, beta2, decay1, decay2, sqrt_bc2, eps,
                   eta_minus, eta_plus, step_min, step_max, use_bias, stats):
    """One optimizer step per parameter (scalar.optimizer_step, one thread each) from
    g = scale * grad (+ l2 * w for weights), scale = scales[b]: the arithmetic of
    loop.update_layer over every layer in one launch; for a layer whose gradient is still
    in chunks (``split``, as _sum_parts) their sum, so no launch is spent reducing them.
    Biases skip l2, and every step when use_bias is false. Nothing happens once stats[2]
    (the divergence flag of train_epoch) is set."""
    k = cuda.grid(1)
    if k >= params.shape[0] or stats[2] != 0:
        return
    scale = scales[b]
    g, weight, _ = _layer_gradient(grad, parts, split, sizes, k)
    if weight:
        g = scalar.penalized_gradient(g, params[k], scale, l2)
    elif use_bias:
        g = scale * g
    else:
        return
    c = scalar.Step(lr, momentum, nesterov, l2, step_size, beta1, beta2, decay1, decay2,
                    sqrt_bc2, eps, eta_minus, eta_plus, step_min, step_max)
    params[k], state[0, k], state[1, k] = scalar.optimizer_step(
        opt, params[k], g, state[0, k], state[1, k], c, params.dtype.type(1))


@jit(cache=True)
def _gather_rows(A, Yb, Sb, X, Y, SW, order, lo, n, n_in, n_out):
    """a[0]_sj = X[order[lo + s], j] into A[:n * n_in]; Yb_si = Y[order[lo + s], i]; with
    weights Sb_s = SW[order[lo + s]]. Sample s = blockIdx.y, column on threadIdx.x: columns
    0..n_in-1 the inputs, then n_out targets, then the weight."""
    c, s = _u(cuda.grid(1)), _u(cuda.blockIdx.y)
    n_in, n_out = _u(n_in), _u(n_out)
    if s >= _u(n):
        return
    r = order[_u(lo) + s]
    if c < n_in:
        A[s * n_in + c] = X[r, c]
    elif c < n_in + n_out:
        Yb[s, c - n_in] = Y[r, c - n_in]
    elif c == n_in + n_out and SW.shape[0]:
        Sb[s] = SW[r]


@jit(cache=True)
def _sum_costs(stats, running, cost, sw, n, batch_n, first, last):
    """running (+)= [sum_s cost_s, sum_s sw_s] over one piece of a batch (costs already
    weighted; no weights: sw empty, each counts 1); on its last piece, if the cost sum is
    finite, stats[0] += it, stats[1] += batch_n and stats[3] += the weight sum, else
    stats[2] = 1 (and every later batch is skipped). One block; each thread sums a strided
    part, thread 0 the parts in a fixed order, so the result does not depend on timing."""
    part = cuda.shared.array(0, _FLOAT64)  # blockDim.x partial cost sums, then weight sums
    t, T = cuda.threadIdx.x, cuda.blockDim.x
    acc, weight = 0.0, 0.0
    s = t
    while s < n:  # a counted loop without range()'s division
        acc += cost[s]
        weight += sw[s] if sw.shape[0] else 1.0
        s += T
    part[t] = acc
    part[T + t] = weight
    cuda.syncthreads()
    if t != 0 or stats[2] != 0:
        return
    total = 0.0 if first else running[0]
    weight = 0.0 if first else running[1]
    for k in range(T):
        total += part[k]
        weight += part[T + k]
    running[0], running[1] = total, weight
    if last:
        if math.isfinite(total):
            stats[0] += total
            stats[1] += batch_n
            stats[3] += weight
        else:
            stats[2] = 1.0


# -- host side ---------------------------------------------------------------------------------

def _tile_bytes(A):
    """Dynamic shared memory of the tiled kernels: two TILE x (TILE R + 1) slices."""
    return 2 * config.TILE * (config.TILE * R + 1) * A.dtype.itemsize


def launch_forward(A, params, n, net, softmax=True):
    """forward: one tiled launch per layer, and one for a softmax layer's rows unless
    ``softmax`` is False (train_epoch: _cost_delta_rows applies it)."""
    t, T = config.TILE, config.THREADS_PER_BLOCK
    for m in range(1, net.L + 1):
        n_in, n_out, code = net.D[m - 1], net.D[m], net.acts[m - 1]
        launch(_forward_layer, (cdiv(n_out, t * R), cdiv(n, t * R)), (t, t), _tile_bytes(A))(
            A, params, net.w[m], net.block(m - 1, n), net.block(m, n), n, n_in, n_out, code)
        if code == SOFTMAX and softmax:
            launch(_softmax_rows, cdiv(n, T), T)(A, net.block(m, n), n, n_out)


def launch_hidden_deltas(Dl, A, params, n, net):
    """hidden_deltas: one tiled launch per hidden layer, from L-1 down."""
    t = config.TILE
    for m in range(net.L - 1, 0, -1):
        launch(_delta_layer, (cdiv(net.D[m], t * R), cdiv(n, t * R)), (t, t), _tile_bytes(A))(
            Dl, A, params, net.w[m + 1], net.block(m, n), net.block(m + 1, n), n, net.D[m],
            net.D[m + 1], net.acts[m - 1])


def grad_splits(n, n_in, n_out):
    """(chunks, samples per chunk) of a layer's gradient over n samples: enough chunks that
    the layer's tiles times the chunks reach GRAD_SPLIT_BLOCKS blocks, none shorter than
    GRAD_SPLIT_MIN_ROWS samples; one chunk when the tiles alone fill the GPU."""
    t = config.TILE
    tiles = cdiv(n_in + 1, t * R) * cdiv(n_out, t * R)
    splits = max(1, min(config.GRAD_SPLIT_BLOCKS // tiles, n // config.GRAD_SPLIT_MIN_ROWS))
    chunk = cdiv(cdiv(n, splits), t) * t
    return cdiv(n, chunk), chunk


class Split(NamedTuple):
    """How launch_grads splits each layer's samples (``grad_splits``) for n samples."""
    chunks: list      # per layer: (chunks, samples per chunk)
    offsets: list     # per layer: where its partial sums start in parts
    table: object     # (L, 2) int64 device array: chunks, offset of the partial sums in parts
    size: int         # elements of parts needed
    any: bool         # some layer has more than one chunk


def split_for(n, net):
    """The Split of n samples for a network (``cuda._Net``), made once and kept in it."""
    key = ("split", n, config.TILE, config.GRAD_SPLIT_BLOCKS, config.GRAD_SPLIT_MIN_ROWS)
    if key not in net.plans:
        chunks = [grad_splits(n, net.D[m - 1], net.D[m]) for m in range(1, net.L + 1)]
        table, at, offsets = np.zeros((net.L, 2), np.int64), 0, []
        for m, (c, _) in enumerate(chunks, start=1):
            table[m - 1] = c, at
            offsets.append(at)
            if c > 1:
                at += c * net.D[m] * (net.D[m - 1] + 1)
        net.plans[key] = Split(chunks, offsets, cuda.to_device(table), at,
                               any(c > 1 for c, _ in chunks))
    return net.plans[key]


def no_split(net):
    """A Split with every layer in one chunk (for update on a plain gradient)."""
    key = ("no-split",)
    if key not in net.plans:
        table = np.ones((net.L, 2), np.int64)
        table[:, 1] = 0
        net.plans[key] = Split([(1, 0)] * net.L, [0] * net.L, cuda.to_device(table), 0, False)
    return net.plans[key]


def launch_grads(grad, Dl, A, n, net, keep, parts, reduce=True):
    """accumulate_gradients (keep: add to grad, else overwrite it): one launch per layer; a
    layer whose samples are split in chunks (``split_for``) leaves partial sums in
    ``parts`` (a device array of at least split_for(n, net).size elements), summed into
    grad by one more launch for all layers if ``reduce``, else left for launch_update
    (which then must get the same Split). Returns the Split."""
    t, T = config.TILE, config.THREADS_PER_BLOCK
    split = split_for(n, net)
    for m in range(1, net.L + 1):
        n_in, n_out = net.D[m - 1], net.D[m]
        chunks, chunk = split.chunks[m - 1]
        grid = (cdiv(n_in + 1, t * R), cdiv(n_out, t * R), chunks)
        size = n_out * (n_in + 1)
        if chunks == 1:
            launch(_grad_layer, grid, (t, t), _tile_bytes(A))(
                grad, Dl, A, net.w[m], 0, net.block(m, n), net.block(m - 1, n), n, chunk, n_in,
                n_out, keep)
        else:
            launch(_grad_layer, grid, (t, t), _tile_bytes(A))(
                parts, Dl, A, split.offsets[m - 1], size, net.block(m, n), net.block(m - 1, n), n, chunk, n_in,
                n_out, False)
    if split.any and reduce:
        launch(_sum_parts, cdiv(net.P, T), T)(grad, parts, split.table, net.sizes_d, keep)
    return split


def update_args(dtype, hyper, t):
    """The scalar arguments of _update_params after ``opt`` for the t-th update, in the
    working dtype: the fields of scalar.step_constants, in order."""
    return tuple(scalar.in_dtype(scalar.step_constants(hyper, t), np.dtype(dtype).type))


def launch_gather_rows(A, Yb, Sb, X, Y, SW, order, lo, n, net):
    """The inputs of samples order[lo:lo + n] into block 0 of A, their targets into Yb, their
    weights (if any) into Sb."""
    T, L = config.THREADS_PER_BLOCK, net.L
    launch(_gather_rows, (cdiv(net.D[0] + net.D[L] + 1, T), n), T)(
        A, Yb, Sb, X, Y, SW, order, lo, n, net.D[0], net.D[L])


def launch_cost_rows(cost, A, Y, n, net, loss):
    """sample_costs: one thread per sample."""
    T, L = config.THREADS_PER_BLOCK, net.L
    launch(_cost_rows, cdiv(n, T), T)(cost, A, Y, net.block(L, n), n, net.D[L],
                                      net.acts[L - 1] == SIGMOID, loss)


def launch_output_delta_rows(Dl, A, Y, sw, n, net, loss):
    """output_delta: one thread per sample."""
    T, L = config.THREADS_PER_BLOCK, net.L
    launch(_output_delta_rows, cdiv(n, T), T)(Dl, A, Y, sw, net.block(L, n), n, net.D[L],
                                              net.acts[L - 1], loss)


def launch_cost_delta_rows(cost, Dl, A, Y, sw, n, net, loss):
    """sample_costs (weighted) and output_delta in one launch (train_epoch)."""
    T, L = config.THREADS_PER_BLOCK, net.L
    launch(_cost_delta_rows, cdiv(n, T), T)(cost, Dl, A, Y, sw, net.block(L, n), n, net.D[L],
                                            net.acts[L - 1], net.acts[L - 1] == SIGMOID, loss)


def launch_sum_costs(stats, running, cost, sw, n, batch_n, first, last):
    """_sum_costs in one block of up to 512 threads (two float64 partial sums each)."""
    T = min(config.THREADS_PER_BLOCK, 512)
    launch(_sum_costs, 1, T, 16 * T)(stats, running, cost, sw, n, batch_n, first, last)


def launch_update(params, state, grad, net, scales, b, opt, hyper, t, use_bias, stats,
                  parts=None, split=None):
    """update, the t-th, with scale scales[b] (a device array): one thread per parameter;
    skipped once stats[2] is set. With ``split`` (launch_grads' Split, reduce=False) the
    chunked layers' gradients are summed from ``parts`` here."""
    T = config.THREADS_PER_BLOCK
    if split is None:
        split, parts = no_split(net), grad
    launch(_update_params, cdiv(net.P, T), T)(
        params, state, grad, parts, split.table, net.sizes_d, scales, b, opt,
        *update_args(params.dtype, hyper, t), use_bias, stats)
