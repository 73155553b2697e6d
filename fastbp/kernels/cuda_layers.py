"""Per-layer numba.cuda kernels: one thread per output value, tiles in shared memory.

Arrays are the flat buffers of the backend contract (``fastbp.kernels``) on the device;
a kernel finds its layer through offsets (``_Net`` in ``cuda.py``). In every kernel the
contiguous index of the array being written (the output neuron i of z[m], the unit j of
delta[m], the input index j of W[m]_ij) runs along threadIdx.x, so a warp reads and
writes neighbouring addresses. The ``launch_*`` functions at the end are the host side.
"""
import math

import numpy as np

from fastbp.kernels import cuda_config as config
from fastbp.kernels import scalar
from fastbp.kernels.codes import SIGMOID, SOFTMAX
from fastbp.kernels.cuda_config import cdiv, cuda, jit, launch

_FLOAT64 = np.dtype(np.float64)  # an instance: the simulator's shared arrays need itemsize


# -- kernels ----------------------------------------------------------------------------------

@jit(cache=True)
def _forward_layer(A, params, w, a_in, a_out, n, n_in, n_out, code):
    """z_si = sum_j W_ij * a_in_sj + b_i, a_si = act(z_si) (softmax: _softmax_rows after).

    A       (>= n * sum(D),)  a_in (n, n_in) at A[a_in:], z (n, n_out) written at A[a_out:]
    params  (P,)              W (n_out, n_in) at params[w:], b right after it

    A TILE x TILE block computes TILE samples (threadIdx.y) x TILE outputs i (threadIdx.x);
    tiles of a_in and W along j go through shared memory, loaded with j on threadIdx.x.
    """
    tiles = cuda.shared.array(0, A.dtype)  # a_in tile [sample, j], then W tile [output, j]
    one = A.dtype.type(1)
    t, tx, ty = cuda.blockDim.x, cuda.threadIdx.x, cuda.threadIdx.y
    ld = t + 1  # odd row stride: the threads of a warp read a tile's column from distinct banks
    wt = t * ld
    s0, i0 = cuda.blockIdx.y * t, cuda.blockIdx.x * t
    s, i = s0 + ty, i0 + tx
    b = w + n_out * n_in
    acc = params[b + i] if i < n_out else one - one  # bias first: the loop kernels' order
    for j0 in range(0, n_in, t):
        j = j0 + tx
        ok = j < n_in
        tiles[ty * ld + tx] = A[a_in + s * n_in + j] if ok and s < n else one - one
        tiles[wt + ty * ld + tx] = (params[w + (i0 + ty) * n_in + j] if ok and i0 + ty < n_out
                                    else one - one)
        cuda.syncthreads()
        for k in range(min(t, n_in - j0)):
            acc += tiles[wt + tx * ld + k] * tiles[ty * ld + k]
        cuda.syncthreads()
    if s < n and i < n_out:
        A[a_out + s * n_out + i] = acc if code == SOFTMAX else scalar.activate(code, acc, one)


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
    """_cost_rows and _output_delta_rows in one launch (train_epoch), the cost weighted
    too."""
    s = cuda.grid(1)
    if s < n:
        row = off + s * n_out
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

    TILE samples (threadIdx.y) x TILE units j (threadIdx.x) per block; tiles along i.
    """
    tiles = cuda.shared.array(0, A.dtype)  # d_next tile [sample, i], then W_next tile [i, j]
    one = A.dtype.type(1)
    t, tx, ty = cuda.blockDim.x, cuda.threadIdx.x, cuda.threadIdx.y
    ld = t + 1
    wt = t * ld
    s, j = cuda.blockIdx.y * t + ty, cuda.blockIdx.x * t + tx
    acc = one - one
    for i0 in range(0, n_next, t):
        i = i0 + tx
        tiles[ty * ld + tx] = Dl[off_next + s * n_next + i] if s < n and i < n_next else one - one
        i = i0 + ty
        tiles[wt + ty * ld + tx] = (params[w_next + i * n_here + j] if i < n_next and j < n_here
                                    else one - one)
        cuda.syncthreads()
        for k in range(min(t, n_next - i0)):
            acc += tiles[wt + k * ld + tx] * tiles[ty * ld + k]
        cuda.syncthreads()
    if s < n and j < n_here:
        Dl[off + s * n_here + j] = acc * scalar.derivative(code, A[off + s * n_here + j], one)


@jit(cache=True)
def _grad_layer(grad, Dl, A, w, d_off, a_off, n, n_in, n_out, keep):
    """gW_ij (+)= sum_s d_si * a_in_sj,  gb_i (+)= sum_s d_si  (keep: add, else overwrite).

    grad  gW (n_out, n_in) at grad[w:], gb right after it
    Dl    d (n, n_out) at Dl[d_off:]
    A     a_in (n, n_in) at A[a_off:]

    One thread per weight, summing over the samples (no atomics): TILE rows i
    (threadIdx.y) x TILE columns j (threadIdx.x) per block, samples in tiles of TILE.
    Column j = n_in is the bias, as if a_in had a last column of ones.
    """
    tiles = cuda.shared.array(0, A.dtype)  # d tile [sample, i], then a_in tile [sample, j]
    one = A.dtype.type(1)
    zero = one - one
    t, tx, ty = cuda.blockDim.x, cuda.threadIdx.x, cuda.threadIdx.y
    ld = t + 1
    at = t * ld
    i0 = cuda.blockIdx.y * t
    i, j = i0 + ty, cuda.blockIdx.x * t + tx
    acc = zero
    for s0 in range(0, n, t):
        s = s0 + ty
        r = i0 + tx
        tiles[ty * ld + tx] = Dl[d_off + s * n_out + r] if s < n and r < n_out else zero
        if s < n and j < n_in:
            tiles[at + ty * ld + tx] = A[a_off + s * n_in + j]
        else:
            tiles[at + ty * ld + tx] = one if s < n and j == n_in else zero
        cuda.syncthreads()
        for k in range(min(t, n - s0)):
            acc += tiles[k * ld + ty] * tiles[at + k * ld + tx]
        cuda.syncthreads()
    if i < n_out and j <= n_in:
        g = w + i * n_in + j if j < n_in else w + n_out * n_in + i
        grad[g] = grad[g] + acc if keep else acc


@jit(cache=True)
def _update_params(params, state, grad, sizes, scales, b, opt, lr, momentum, nesterov, l2,
                   step_size, beta1, beta2, sqrt_bc2, eps, eta_minus, eta_plus, step_min,
                   step_max, use_bias, stats):
    """One optimizer step per parameter (scalar.optimizer_step, one thread each) from
    g = scale * grad (+ l2 * w for weights), scale = scales[b]: the arithmetic of
    loop._update_layer over every layer in one launch. Biases skip l2, and every step when
    use_bias is false. Nothing happens once stats[2] (the divergence flag of train_epoch)
    is set."""
    k = cuda.grid(1)
    if k >= params.shape[0] or stats[2] != 0:
        return
    scale = scales[b]
    p = 0
    for m in range(1, sizes.shape[0]):
        n_w = sizes[m] * sizes[m - 1]
        if k < p + n_w:
            g = scalar.penalized_gradient(grad[k], params[k], scale, l2)
            break
        if k < p + n_w + sizes[m]:
            if not use_bias:
                return
            g = scale * grad[k]
            break
        p += n_w + sizes[m]
    params[k], state[0, k], state[1, k] = scalar.optimizer_step(
        opt, params[k], g, state[0, k], state[1, k], lr, momentum, nesterov, step_size,
        beta1, beta2, sqrt_bc2, eps, eta_minus, eta_plus, step_min, step_max,
        params.dtype.type(1))


@jit(cache=True)
def _gather_rows(A, Yb, Sb, X, Y, SW, order, lo, n, n_in, n_out):
    """a[0]_sj = X[order[lo + s], j] into A[:n * n_in]; Yb_si = Y[order[lo + s], i]; with
    weights Sb_s = SW[order[lo + s]]. One thread per element, the column on threadIdx.x."""
    k = cuda.grid(1)
    if k < n and SW.shape[0]:
        Sb[k] = SW[order[lo + k]]
    if k < n * n_in:
        s = k // n_in
        A[k] = X[order[lo + s], k - s * n_in]
        return
    k -= n * n_in
    if k < n * n_out:
        s = k // n_out
        Yb[s, k - s * n_out] = Y[order[lo + s], k - s * n_out]


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
    for s in range(t, n, T):
        acc += cost[s]
        weight += sw[s] if sw.shape[0] else 1.0
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
    """Dynamic shared memory of the tiled kernels: two TILE x (TILE + 1) tiles."""
    return 2 * config.TILE * (config.TILE + 1) * A.dtype.itemsize


def launch_forward(A, params, n, net):
    """forward: one tiled launch per layer (and one for a softmax layer's rows)."""
    t, T = config.TILE, config.THREADS_PER_BLOCK
    for m in range(1, net.L + 1):
        n_in, n_out, code = net.D[m - 1], net.D[m], net.acts[m - 1]
        launch(_forward_layer, (cdiv(n_out, t), cdiv(n, t)), (t, t), _tile_bytes(A))(
            A, params, net.w[m], net.block(m - 1, n), net.block(m, n), n, n_in, n_out, code)
        if code == SOFTMAX:
            launch(_softmax_rows, cdiv(n, T), T)(A, net.block(m, n), n, n_out)


def launch_hidden_deltas(Dl, A, params, n, net):
    """hidden_deltas: one tiled launch per hidden layer, from L-1 down."""
    t = config.TILE
    for m in range(net.L - 1, 0, -1):
        launch(_delta_layer, (cdiv(net.D[m], t), cdiv(n, t)), (t, t), _tile_bytes(A))(
            Dl, A, params, net.w[m + 1], net.block(m, n), net.block(m + 1, n), n, net.D[m],
            net.D[m + 1], net.acts[m - 1])


def launch_grads(grad, Dl, A, n, net, keep):
    """accumulate_gradients (keep: add to grad, else overwrite it): one launch per layer."""
    t = config.TILE
    for m in range(1, net.L + 1):
        n_in, n_out = net.D[m - 1], net.D[m]
        grid = (cdiv(n_in + 1, t), cdiv(n_out, t))
        launch(_grad_layer, grid, (t, t), _tile_bytes(A))(
            grad, Dl, A, net.w[m], net.block(m, n), net.block(m - 1, n), n, n_in, n_out, keep)


def update_args(dtype, hyper, t):
    """The scalar arguments of _update_params after ``scale`` for the t-th update, in the
    working dtype: scalar.step_constants (nesterov stays a bool)."""
    dt = np.dtype(dtype).type
    return tuple(c if k == 2 else dt(c) for k, c in enumerate(scalar.step_constants(hyper, t)))


def launch_gather_rows(A, Yb, Sb, X, Y, SW, order, lo, n, net):
    """The inputs of samples order[lo:lo + n] into block 0 of A, their targets into Yb, their
    weights (if any) into Sb."""
    T, L = config.THREADS_PER_BLOCK, net.L
    launch(_gather_rows, cdiv(n * (net.D[0] + net.D[L]), T), T)(
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


def launch_update(params, state, grad, net, scales, b, opt, hyper, t, use_bias, stats):
    """update, the t-th, with scale scales[b] (a device array): one thread per parameter;
    skipped once stats[2] is set."""
    T = config.THREADS_PER_BLOCK
    launch(_update_params, cdiv(net.P, T), T)(
        params, state, grad, net.sizes_d, scales, b, opt, *update_args(params.dtype, hyper, t),
        use_bias, stats)
