"""numba.cuda kernels: the equations of backpropagation with one GPU thread per output value.

Same names, argument order and layouts as ``fastbp.kernels.loop`` (see ``fastbp.kernels``).
Every public kernel takes device arrays (from ``empty`` / ``to_device``: nothing is
copied) or host NumPy arrays (copied to the GPU once per call; the outputs are copied
back into the same host arrays). ``sizes`` and ``acts`` arrive as small host int64
arrays; their device copies and the offsets derived from them are cached.

Two ways through an epoch (``train_epoch``):

- per-layer launches, for any network: per batch, a gather of the batch's rows, one
  tiled launch per layer forward, one for the costs and output errors, one per hidden
  layer backward, one per layer of outer-product gradients, one update over all
  parameters. Costs are summed and checked for finiteness on the device, so the host
  never waits inside an epoch.
- one fused launch per epoch, for online and small-batch training (``fused_plan``): a
  single thread block runs every batch -- forward, backward, update -- in phases
  separated by ``syncthreads``, with a batch's activations and deltas in shared memory,
  and the parameters too when they fit (loaded once, written back at the end; else they
  stay in global memory, where L2 holds them). Per-launch overhead, which dominates the
  per-layer path at batch size 1, is then paid once per epoch.

In every kernel the contiguous index of the array being written (the output neuron i
of z[m], the unit j of delta[m], the input index j of W[m]_ij) runs along threadIdx.x,
so a warp reads and writes neighbouring addresses.

Importing this module imports ``numba.cuda`` (only this module does); without numba-cuda
it still imports, and ``require()`` says what to install.
"""
import importlib.util
import math
import warnings
from typing import NamedTuple

import numpy as np

from fastbp.kernels import codes, scalar
from fastbp.kernels.codes import CROSS_ENTROPY, SIGMOID, SOFTMAX

try:
    if importlib.util.find_spec("numba_cuda") is None:
        # numba's own numba.cuda is deprecated; the NVIDIA-maintained numba-cuda is needed.
        raise ImportError("No module named 'numba_cuda'")
    from numba import cuda
except ImportError as exc:  # pragma: no cover - depends on the environment
    cuda, _IMPORT_ERROR = None, exc
else:
    _IMPORT_ERROR = None

# Threads per block of the 1-D kernels. Tests shrink it (and TILE, FUSED_THREADS) so that
# several blocks run under the simulator; kernels read their sizes from blockDim.
THREADS_PER_BLOCK = 256
# Side of the square thread blocks of the tiled layer kernels (TILE x TILE threads, at
# most 32). Their two TILE x (TILE + 1) tiles are dynamic shared memory (_tile_bytes).
TILE = 16
# Threads of the fused epoch's single block.
FUSED_THREADS = 256
# Fused epoch: None picks it when fused_plan says it fits and pays, True whenever it fits,
# False never.
FUSED = None
# Fused epoch: keep the parameters in shared memory when they fit (False: always in global
# memory, as for networks too big for shared memory; for comparisons and tests).
FUSED_PARAMS_IN_SHARED = True
# Dynamic shared memory the fused epoch may use (a block gets 48 KiB without opting in).
FUSED_SHARED_BYTES = 44 * 1024
# Samples per piece of a batch in the fused epoch at most.
FUSED_MAX_ROWS = 256
# batch_size * P above which the per-layer launches, which spread a batch over the whole
# GPU, beat the one block of the fused epoch (a first estimate; benchmarks tune it).
FUSED_MAX_WORK = 1 << 21
# Per-layer path: train_epoch works through a batch in pieces of at most WORK_ROWS samples,
# summing their gradients before the one update.
WORK_ROWS = 8192

_FLOAT64 = np.dtype(np.float64)  # an instance: the simulator's shared arrays need itemsize

# Columns of the fused epoch's layout table ``lay`` (L + 1, 8), row m for layer m:
_D, _ACT, _GW, _SW, _LD, _SA, _LDA, _SD = range(8)
#   D[m], activation code, offset of W[m] in params, offset of W[m] in shared memory, its
#   padded row stride (odd), offset of block m of A in shared memory, that block's padded
#   row stride (odd), offset of block m of the deltas in shared memory.


def require():
    """Raise RuntimeError unless numba-cuda is installed and a GPU (or the simulator) is found."""
    if cuda is None:
        raise RuntimeError(
            "the 'cuda' backend needs numba-cuda, which is not installed "
            f"({_IMPORT_ERROR}); install it with: pip install fastbp[cuda]")
    if not cuda.is_available():
        raise RuntimeError(
            "the 'cuda' backend found no usable CUDA GPU (numba.cuda.is_available() is "
            "False: no NVIDIA GPU, driver or CUDA libraries). Use backend='loop', or set "
            "NUMBA_ENABLE_CUDASIM=1 before numba is imported to run the CUDA simulator.")


def _jit(*args, **kwargs):
    """cuda.jit, or a no-op without numba-cuda (the module then only serves require())."""
    if cuda is None:
        return lambda f: f
    return cuda.jit(*args, **kwargs)


_device = _jit(device=True)
_activate = _device(scalar.activate)
_derivative = _device(scalar.derivative)
_cost_term = _device(scalar.cost_term)
_sgd_step = _device(scalar.sgd_step)
_optimizer_step = _device(scalar.optimizer_step)
# Under NUMBA_ENABLE_CUDASIM=1 kernels are FakeCUDAKernel objects run in Python threads.
_SIMULATOR = type(_activate).__name__ == "FakeCUDAKernel"


# -- memory hooks ---------------------------------------------------------------------------

def workspace_rows(batch_size):
    """Rows that train_epoch's workspaces A, Dl, cost and Yb need for this batch size."""
    return min(batch_size, WORK_ROWS)


def empty(shape, dtype):
    """An uninitialized device array."""
    return cuda.device_array(shape, dtype)


def to_device(array):
    """A device copy of a host array (a device array is returned as it is)."""
    if not isinstance(array, np.ndarray):
        return array
    return cuda.to_device(np.ascontiguousarray(array))


def to_host(array, out):
    """Copy ``array`` (device or host) into the host array ``out``; return ``out``."""
    if isinstance(array, np.ndarray):
        if array is not out:
            np.copyto(out, array)
    elif out.flags.c_contiguous:
        array.copy_to_host(out)
    else:
        out[...] = array.copy_to_host()
    return out


def _cdiv(a, b):
    return -(-a // b)


_CONFIGS = {}


def _launch(kernel, grid, block, shared_bytes=0):
    """kernel[grid, block, 0, shared_bytes], made once per configuration and kept: making
    one costs time, and numba-cuda warns on each made with fewer than 128 blocks, as most
    of ours are on purpose (small layers, one-block reductions, the fused epoch)."""
    if _SIMULATOR:  # the simulator's kernel[...] configures the kernel object itself
        return kernel[grid, block, 0, shared_bytes]
    key = (kernel, grid, block, shared_bytes)
    config = _CONFIGS.get(key)
    if config is None:
        if len(_CONFIGS) > 4096:
            _CONFIGS.clear()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Grid size .* under-utilization")
            config = _CONFIGS[key] = kernel[grid, block, 0, shared_bytes]
    return config


# -- shapes and offsets, cached per network ---------------------------------------------------

class _Net:
    """Sizes and offsets of one network shape on the host, its sizes on the device."""

    def __init__(self, sizes, acts):
        self.D = [int(d) for d in sizes]
        self.L = len(self.D) - 1
        self.acts = [int(a) for a in acts]
        self.w = [0] * (self.L + 1)            # offset of W[m] in params; b[m] follows
        for m in range(2, self.L + 1):
            self.w[m] = self.w[m - 1] + self.D[m - 1] * (self.D[m - 2] + 1)
        self.P = self.w[self.L] + self.D[self.L] * (self.D[self.L - 1] + 1)
        self.units = [sum(self.D[:m]) for m in range(self.L + 1)]  # block m at n * units[m]
        self.sizes_d = cuda.to_device(np.asarray(self.D, np.int64))
        self.plans = {}

    def block(self, m, n):
        """Offset of block m, (n, D[m]), in a layer-major workspace for n samples."""
        return n * self.units[m]


_NETS = {}


def _net(sizes, acts=()):
    key = (np.asarray(sizes, np.int64).tobytes(), np.asarray(acts, np.int64).tobytes())
    net = _NETS.get(key)
    if net is None:
        net = _NETS[key] = _Net(sizes, acts)
    return net


def _on_device(*arrays):
    return [to_device(a) for a in arrays]


def _back(device, host):
    """Copy a kernel's output back when the caller gave a host array."""
    if isinstance(host, np.ndarray):
        to_host(device, host)


# -- per-sample rows (device functions shared by the per-layer and the fused kernels) --------

@_device
def _softmax_row(a, off, n_out, one):
    """a_i = exp(z_i - max z) / sum_k exp(z_k - max z) in place on a[off:off + n_out]."""
    top = a[off]
    for i in range(1, n_out):
        top = max(top, a[off + i])
    total = one - one
    for i in range(n_out):
        e = math.exp(a[off + i] - top)
        a[off + i] = e
        total += e
    inv = one / total
    for i in range(n_out):
        a[off + i] *= inv


@_device
def _row_cost(a, off, Y, r, n_out, binary, loss):
    """C(a[L], y) of one sample in float64; a[L] at a[off:], y = Y[r]."""
    c = 0.0
    for i in range(n_out):
        c += _cost_term(Y[r, i], a[off + i], binary, loss)
    return c


@_device
def _row_output_delta(d, d_off, a, a_off, Y, r, n_out, code, loss, one):
    """delta[L] of one sample at d[d_off:], from a[L] at a[a_off:] and y = Y[r] (see
    loop._row_output_delta: a * sum(y) - y for softmax + cross-entropy, a - y for sigmoid
    + cross-entropy, the softmax Jacobian or act' for mse)."""
    if loss == CROSS_ENTROPY and code == SOFTMAX:
        total = one - one
        for i in range(n_out):
            total += Y[r, i]
        for i in range(n_out):
            d[d_off + i] = a[a_off + i] * total - Y[r, i]
        return
    for i in range(n_out):
        d[d_off + i] = a[a_off + i] - Y[r, i]
    if loss == CROSS_ENTROPY:
        return
    if code == SOFTMAX:
        dot = one - one
        for i in range(n_out):
            dot += d[d_off + i] * a[a_off + i]
        for i in range(n_out):
            d[d_off + i] = a[a_off + i] * (d[d_off + i] - dot)
    else:
        for i in range(n_out):
            d[d_off + i] *= _derivative(code, a[a_off + i], one)


# -- per-layer kernels ------------------------------------------------------------------------

@_jit(cache=True)
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
        A[a_out + s * n_out + i] = acc if code == SOFTMAX else _activate(code, acc, one)


@_jit(cache=True)
def _softmax_rows(A, off, n, n_out):
    """a = softmax(z) per sample, one thread per sample; z (n, n_out) at A[off:]."""
    s = cuda.grid(1)
    if s < n:
        _softmax_row(A, off + s * n_out, n_out, A.dtype.type(1))


@_jit(cache=True)
def _costs_kernel(cost, A, Y, off, n, n_out, binary, loss):
    """cost_s = C(a[L]_s, y_s), one thread per sample; a[L] (n, n_out) at A[off:]."""
    s = cuda.grid(1)
    if s < n:
        cost[s] = _row_cost(A, off + s * n_out, Y, s, n_out, binary, loss)


@_jit(cache=True)
def _output_delta_kernel(Dl, A, Y, off, n, n_out, code, loss):
    """delta[L]_s from a[L]_s and y_s, one thread per sample; both (n, n_out) at [off:]."""
    s = cuda.grid(1)
    if s < n:
        _row_output_delta(Dl, off + s * n_out, A, off + s * n_out, Y, s, n_out, code, loss,
                          A.dtype.type(1))


@_jit(cache=True)
def _cost_delta_kernel(cost, Dl, A, Y, off, n, n_out, code, binary, loss):
    """_costs_kernel and _output_delta_kernel in one launch (train_epoch)."""
    s = cuda.grid(1)
    if s < n:
        row = off + s * n_out
        cost[s] = _row_cost(A, row, Y, s, n_out, binary, loss)
        _row_output_delta(Dl, row, A, row, Y, s, n_out, code, loss, A.dtype.type(1))


@_jit(cache=True)
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
        Dl[off + s * n_here + j] = acc * _derivative(code, A[off + s * n_here + j], one)


@_jit(cache=True)
def _gradient_layer(grad, Dl, A, w, d_off, a_off, n, n_in, n_out, keep):
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


@_jit(cache=True)
def _update_kernel(params, state, grad, sizes, scale, opt, lr, momentum, nesterov, l2,
                   step_size, beta1, beta2, sqrt_bc2, eps, eta_minus, eta_plus, step_min,
                   step_max, use_bias, stats):
    """One optimizer step per parameter (scalar.optimizer_step, one thread each) from
    g = scale * grad (+ l2 * w for weights): the arithmetic of loop.update. Biases skip
    l2, and every step when use_bias is false. Nothing happens once stats[2] (the
    divergence flag of train_epoch) is set."""
    k = cuda.grid(1)
    if k >= params.shape[0] or stats[2] != 0:
        return
    p = 0
    for m in range(1, sizes.shape[0]):
        n_w = sizes[m] * sizes[m - 1]
        if k < p + n_w:
            g = scale * grad[k] + l2 * params[k]
            break
        if k < p + n_w + sizes[m]:
            if not use_bias:
                return
            g = scale * grad[k]
            break
        p += n_w + sizes[m]
    params[k], state[0, k], state[1, k] = _optimizer_step(
        opt, params[k], g, state[0, k], state[1, k], lr, momentum, nesterov, step_size,
        beta1, beta2, sqrt_bc2, eps, eta_minus, eta_plus, step_min, step_max,
        params.dtype.type(1))


@_jit(cache=True)
def _gather_rows(A, Yb, X, Y, order, lo, n, n_in, n_out):
    """a[0]_sj = X[order[lo + s], j] into A[:n * n_in]; Yb_si = Y[order[lo + s], i].
    One thread per element, the column on threadIdx.x."""
    k = cuda.grid(1)
    if k < n * n_in:
        s = k // n_in
        A[k] = X[order[lo + s], k - s * n_in]
        return
    k -= n * n_in
    if k < n * n_out:
        s = k // n_out
        Yb[s, k - s * n_out] = Y[order[lo + s], k - s * n_out]


@_jit(cache=True)
def _sum_costs(stats, running, cost, n, batch_n, first, last):
    """running[0] (+)= sum_s cost_s over one piece of a batch; on its last piece, if the
    sum is finite, stats[0] += it and stats[1] += batch_n, else stats[2] = 1 (and every
    later batch is skipped). One block; each thread sums a strided part, thread 0 the
    parts in a fixed order, so the result does not depend on timing."""
    part = cuda.shared.array(0, _FLOAT64)  # blockDim.x partial sums
    t, T = cuda.threadIdx.x, cuda.blockDim.x
    acc = 0.0
    for s in range(t, n, T):
        acc += cost[s]
    part[t] = acc
    cuda.syncthreads()
    if t != 0 or stats[2] != 0:
        return
    total = 0.0 if first else running[0]
    for k in range(T):
        total += part[k]
    running[0] = total
    if last:
        if math.isfinite(total):
            stats[0] += total
            stats[1] += batch_n
        else:
            stats[2] = 1.0


# -- per-layer passes (host side) --------------------------------------------------------------

def _tile_bytes(A):
    """Dynamic shared memory of the tiled kernels: two TILE x (TILE + 1) tiles."""
    return 2 * TILE * (TILE + 1) * A.dtype.itemsize


def _launch_forward(A, params, n, net):
    t, T = TILE, THREADS_PER_BLOCK
    for m in range(1, net.L + 1):
        n_in, n_out, code = net.D[m - 1], net.D[m], net.acts[m - 1]
        _launch(_forward_layer, (_cdiv(n_out, t), _cdiv(n, t)), (t, t), _tile_bytes(A))(
            A, params, net.w[m], net.block(m - 1, n), net.block(m, n), n, n_in, n_out, code)
        if code == SOFTMAX:
            _launch(_softmax_rows, _cdiv(n, T), T)(A, net.block(m, n), n, n_out)


def _launch_hidden(Dl, A, params, n, net):
    t = TILE
    for m in range(net.L - 1, 0, -1):
        _launch(_delta_layer, (_cdiv(net.D[m], t), _cdiv(n, t)), (t, t), _tile_bytes(A))(
            Dl, A, params, net.w[m + 1], net.block(m, n), net.block(m + 1, n), n, net.D[m],
            net.D[m + 1], net.acts[m - 1])


def _launch_gradients(grad, Dl, A, n, net, keep):
    t = TILE
    for m in range(1, net.L + 1):
        n_in, n_out = net.D[m - 1], net.D[m]
        grid = (_cdiv(n_in + 1, t), _cdiv(n_out, t))
        _launch(_gradient_layer, grid, (t, t), _tile_bytes(A))(
            grad, Dl, A, net.w[m], net.block(m, n), net.block(m - 1, n), n, n_in, n_out, keep)


def _scalars(dtype, *values):
    return [dtype.type(v) for v in values]


def _update_args(dtype, hyper, t):
    """The scalar arguments of _update_kernel after ``scale`` for the t-th update:
    (lr, momentum, nesterov, l2, Adam's step_size, beta1, beta2, sqrt_bc2, eps, RPROP's
    eta_minus, eta_plus, step_min, step_max), as loop.update computes them."""
    bc1 = 1.0 - hyper[codes.H_BETA1] ** t
    bc2 = 1.0 - hyper[codes.H_BETA2] ** t
    lr, momentum, l2, step_size, beta1, beta2, sqrt_bc2, eps, *rprop = _scalars(
        np.dtype(dtype), hyper[codes.H_LR], hyper[codes.H_MOMENTUM], hyper[codes.H_L2],
        hyper[codes.H_LR] / bc1, hyper[codes.H_BETA1], hyper[codes.H_BETA2], math.sqrt(bc2),
        hyper[codes.H_EPS], hyper[codes.H_ETA_MINUS], hyper[codes.H_ETA_PLUS],
        hyper[codes.H_STEP_MIN], hyper[codes.H_STEP_MAX])
    return (lr, momentum, bool(hyper[codes.H_NESTEROV]), l2, step_size, beta1, beta2,
            sqrt_bc2, eps, *rprop)


_NO_STOP = {}


def _no_stop():
    """A device stats array whose divergence flag is never set (for update)."""
    if "stats" not in _NO_STOP:
        _NO_STOP["stats"] = cuda.to_device(np.zeros(3))
    return _NO_STOP["stats"]


# -- the kernels of the backend contract --------------------------------------------------------

def forward(A, params, n, sizes, acts):
    """z[m]_i = sum_j W[m]_ij * a[m-1]_j + b[m]_i,  a[m] = act_m(z[m]),  m = 1..L.

    A       (>= n * sum(D),)  block 0 holds the inputs; blocks 1..L overwritten
    params  (P,)              weights and biases
    """
    if n == 0:
        return
    net = _net(sizes, acts)
    dA, dp = _on_device(A, params)
    _launch_forward(dA, dp, n, net)
    _back(dA, A)


def sample_costs(cost, A, Y, n, sizes, acts, loss):
    """cost_s = C(a[L], y) per sample: 0.5 * sum (y - a)^2, or the cross-entropy (float64).

    cost  (>= n,) float64  out, overwritten
    A     (>= n * sum(D),) after ``forward``
    Y     (n, D[L])        targets
    """
    if n == 0:
        return
    net = _net(sizes, acts)
    dc, dA, dY = _on_device(cost, A, Y)
    L, T = net.L, THREADS_PER_BLOCK
    _launch(_costs_kernel, _cdiv(n, T), T)(dc, dA, dY, net.block(L, n), n, net.D[L],
                                           net.acts[L - 1] == SIGMOID, int(loss))
    _back(dc, cost)


def output_delta(Dl, A, Y, n, sizes, acts, loss):
    """delta[L] = dC/da[L] (*) act_L'(z[L]); a[L] - y for softmax or sigmoid + cross-entropy.

    Dl  (>= n * sum(D),)  block L overwritten
    A   (>= n * sum(D),)  after ``forward``
    Y   (n, D[L])         targets
    """
    if n == 0:
        return
    net = _net(sizes, acts)
    dD, dA, dY = _on_device(Dl, A, Y)
    L, T = net.L, THREADS_PER_BLOCK
    _launch(_output_delta_kernel, _cdiv(n, T), T)(dD, dA, dY, net.block(L, n), n, net.D[L],
                                                  net.acts[L - 1], int(loss))
    _back(dD, Dl)


def hidden_deltas(Dl, A, params, n, sizes, acts):
    """delta[m]_j = act_m'(z[m]_j) * sum_i W[m+1]_ij * delta[m+1]_i,  m = L-1..1.

    Dl      (>= n * sum(D),)  block L given (``output_delta``); blocks L-1..1 overwritten
    A       (>= n * sum(D),)  after ``forward``
    params  (P,)              the weights of the forward pass
    """
    if n == 0:
        return
    net = _net(sizes, acts)
    dD, dA, dp = _on_device(Dl, A, params)
    _launch_hidden(dD, dA, dp, n, net)
    _back(dD, Dl)


def accumulate_gradients(grad, Dl, A, n, sizes):
    """dC/dW[m]_ij += delta[m]_i * a[m-1]_j,  dC/db[m]_i += delta[m]_i, summed over n samples.

    grad  (P,)               in/out: sums are added to it (zero it first)
    Dl    (>= n * sum(D),)   after ``output_delta`` and ``hidden_deltas``
    A     (>= n * sum(D),)   after ``forward``
    """
    if n == 0:
        return
    net = _net(sizes)
    dg, dD, dA = _on_device(grad, Dl, A)
    _launch_gradients(dg, dD, dA, n, net, True)
    _back(dg, grad)


def update(params, state, steps, grad, sizes, scale, opt, hyper, use_bias):
    """One optimizer step on every parameter (see loop.update): SGD, Adam or RPROP.

    params  (P,)       in/out
    state   (2, P)     in/out optimizer state
    steps   (1,) int64 in/out: updates made so far, incremented here
    grad    (P,)       summed gradient of the batch; scale = 1 / batch size
    hyper   (N_HYPER,) float64 hyperparameters (host array)
    """
    net = _net(sizes)
    dp, ds, dg = _on_device(params, state, grad)
    t = int(_host(steps)[0]) + 1
    T = THREADS_PER_BLOCK
    _launch(_update_kernel, _cdiv(net.P, T), T)(
        dp, ds, dg, net.sizes_d, dp.dtype.type(scale), int(opt), *_update_args(dp.dtype, hyper, t),
        bool(use_bias), _no_stop())
    _back(dp, params)
    _back(ds, state)
    _set_steps(steps, t)


def _host(array):
    """A host view of a small array, given on the host or on the device."""
    return array if isinstance(array, np.ndarray) else array.copy_to_host()


def _set_steps(steps, value):
    """steps[0] = value, steps on the host or on the device."""
    if isinstance(steps, np.ndarray):
        steps[0] = value
    else:
        steps.copy_to_device(np.array([value], np.int64))


def train_epoch(params, state, steps, grad, A, Dl, cost, Yb, X, Y, order, batch_size,
                sizes, acts, loss, opt, hyper, use_bias, stats):
    """One epoch (online: batch_size 1; full batch: batch_size n). Each batch: forward,
    deltas with the forward-pass weights, summed gradient, then one update with scale
    1 / batch size. SGD runs as one fused launch when ``fused_plan`` allows; everything
    else as per-layer launches over pieces of at most WORK_ROWS samples.

    params, grad            (P,)                        in/out
    state, steps            (2, P), (1,) int64          optimizer state, in/out (``update``)
    A, Dl                   (>= rows * sum(D),)         workspaces, rows = workspace_rows(B)
    cost                    (>= rows,) float64          workspace
    Yb                      (rows, D[L])                workspace for targets
    X, Y                    (n, D[0]), (n, D[L])        the data set
    order                   (n,) int64                  sample order of this epoch
    opt, hyper              optimizer code and (N_HYPER,) float64 hyperparameters (host)
    stats                   (3,) float64 out: [sum of per-sample costs, samples seen,
                            1 if stopped at a batch whose cost was not finite else 0];
                            that batch's update is not applied, nor any later batch.
    """
    net = _net(sizes, acts)
    dev = _on_device(params, state, grad, A, Dl, cost, Yb, X, Y, order, stats)
    dp, ds, dg, dA, dD, dc, dYb, dX, dY, dorder, dstats = dev
    dtype = dp.dtype
    t0 = int(_host(steps)[0])
    dstats.copy_to_device(np.zeros(3))
    n_total = int(dorder.shape[0])
    batch_size = int(batch_size)
    momentum = hyper[codes.H_MOMENTUM]
    plan = (fused_plan(batch_size, sizes, acts, dtype, momentum != 0)
            if int(opt) == codes.SGD else None)
    if n_total and plan is not None:
        lr, momentum, nesterov, l2 = _update_args(dtype, hyper, 1)[:4]
        _launch(_fused_epoch, 1, FUSED_THREADS, plan.nbytes)(
            dp, ds[0], dg, dX, dY, dorder, batch_size, plan.lay, plan.rows, plan.in_shared,
            plan.grad_at, plan.vel_at, plan.costs_at, int(loss), lr, momentum, nesterov, l2,
            bool(use_bias), dstats)
    elif n_total:
        _per_layer_epoch(net, dp, ds, t0, dg, dA, dD, dc, dYb, dX, dY, dorder, batch_size,
                         int(loss), int(opt), hyper, bool(use_bias), dstats)
    for device, host in ((dp, params), (ds, state), (dg, grad), (dstats, stats)):
        _back(device, host)
    seen = int(_host(dstats)[1])
    _set_steps(steps, t0 + -(-seen // batch_size))  # the updates applied


def _per_layer_epoch(net, params, state, t0, grad, A, Dl, cost, Yb, X, Y, order, batch_size,
                     loss, opt, hyper, use_bias, stats):
    """train_epoch with per-layer launches; arrays on the device, t0 updates made before."""
    T, L = THREADS_PER_BLOCK, net.L
    rows = min(workspace_rows(batch_size), int(Yb.shape[0]))
    running = cuda.device_array(1, np.float64)
    binary = net.acts[L - 1] == SIGMOID
    one = params.dtype.type(1)
    n_total = int(order.shape[0])
    for k, start in enumerate(range(0, n_total, batch_size)):
        stop = min(start + batch_size, n_total)
        for lo in range(start, stop, rows):
            nb = min(rows, stop - lo)
            _launch(_gather_rows, _cdiv(nb * (net.D[0] + net.D[L]), T), T)(
                A, Yb, X, Y, order, lo, nb, net.D[0], net.D[L])
            _launch_forward(A, params, nb, net)
            _launch(_cost_delta_kernel, _cdiv(nb, T), T)(
                cost, Dl, A, Yb, net.block(L, nb), nb, net.D[L], net.acts[L - 1], binary, loss)
            _launch(_sum_costs, 1, min(T, 1024), 8 * min(T, 1024))(
                stats, running, cost, nb, stop - start, lo == start, lo + nb == stop)
            _launch_hidden(Dl, A, params, nb, net)
            _launch_gradients(grad, Dl, A, nb, net, lo > start)
        _launch(_update_kernel, _cdiv(net.P, T), T)(
            params, state, grad, net.sizes_d, one / params.dtype.type(stop - start), opt,
            *_update_args(params.dtype, hyper, t0 + k + 1), use_bias, stats)


# -- fused epoch: one block, one launch ----------------------------------------------------------

class FusedPlan(NamedTuple):
    """How train_epoch runs an epoch as one launch of one block (see fused_plan)."""
    lay: object       # (L + 1, 8) int64 device array, columns _D.._SD
    rows: int         # samples per piece of a batch
    in_shared: bool   # parameters (and velocity, gradient buffer) in shared memory
    grad_at: int      # offset of the gradient buffer (shared memory, or the grad array); -1: none
    vel_at: int       # offset of the velocity (shared memory, or the velocity array); -1: none
    costs_at: int     # offset in float64 elements of the per-sample costs, then the stop flag
    nbytes: int       # dynamic shared memory


def fused_plan(batch_size, sizes, acts, dtype, momentum):
    """The FusedPlan of train_epoch for this batch size, or None for per-layer launches.

    Shared memory (FUSED_SHARED_BYTES) always holds one piece of a batch: per sample its
    activations and deltas, rows padded to odd strides, and its float64 cost; a piece is
    the whole batch or as many samples as fit, at most FUSED_MAX_ROWS. When they fit
    beside it, the parameters live there too (each W[m] row padded to an odd stride),
    with the velocity when ``momentum`` and a gradient buffer when a batch takes several
    pieces; else they stay in global memory (the params, velocity and grad arrays). With
    FUSED None the plan is declined when batch_size * P exceeds FUSED_MAX_WORK: the
    per-layer launches then spread a batch over the whole GPU.
    """
    if FUSED is False or cuda is None:
        return None
    net = _net(sizes, acts)
    if FUSED is None and batch_size * net.P > FUSED_MAX_WORK:
        return None
    item = np.dtype(dtype).itemsize
    key = (batch_size, bool(momentum), item, FUSED_SHARED_BYTES, FUSED_MAX_ROWS,
           FUSED_PARAMS_IN_SHARED)
    if key not in net.plans:
        net.plans[key] = _make_plan(net, batch_size, bool(momentum), item)
    return net.plans[key]


def _make_plan(net, batch_size, momentum, item):
    D, L = net.D, net.L
    ld = [0] + [D[m - 1] | 1 for m in range(1, L + 1)]
    p_sh = sum(D[m] * (ld[m] + 1) for m in range(1, L + 1))
    lda = [d | 1 for d in D]
    per_row = sum(lda) + sum(lda[1:])  # activations of every layer, deltas of layers 1..L

    def rows_beside(elements):  # samples per piece beside this many parameter elements
        free = FUSED_SHARED_BYTES - 16 - elements * item  # 16: stop flag and alignment
        return min(batch_size, FUSED_MAX_ROWS, free // (per_row * item + 8))

    vel = p_sh if momentum else 0
    rows = rows_beside(p_sh + vel)
    in_shared, pieces = True, rows < batch_size
    if pieces:
        rows = rows_beside(2 * p_sh + vel)
    if rows < 1 or not FUSED_PARAMS_IN_SHARED:
        in_shared, vel = False, 0
        rows = rows_beside(0)
        pieces = rows < batch_size
        if rows < 1:
            return None
    lay = np.zeros((L + 1, 8), np.int64)
    params_end = p_sh * (1 + pieces) + vel if in_shared else 0
    sw, sa, sd = 0, params_end, params_end + rows * sum(lda)
    for m in range(L + 1):
        lay[m, _D], lay[m, _SA], lay[m, _LDA] = D[m], sa, lda[m]
        sa += rows * lda[m]
        if m >= 1:
            lay[m, _ACT], lay[m, _GW], lay[m, _SD] = net.acts[m - 1], net.w[m], sd
            lay[m, _SW], lay[m, _LD] = (sw, ld[m]) if in_shared else (net.w[m], D[m - 1])
            sw += D[m] * (ld[m] + 1)
            sd += rows * lda[m]
    if in_shared:
        grad_at = p_sh if pieces else -1
        vel_at = p_sh * (1 + pieces) if momentum else -1
    else:
        grad_at, vel_at = (0 if pieces else -1), (0 if momentum else -1)
    costs_at = _cdiv(item * sd, 8)
    return FusedPlan(cuda.to_device(lay), rows, in_shared, grad_at, vel_at, costs_at,
                     8 * (costs_at + rows + 1))


@_device
def _fused_copy(sh, params, lay, base, t, T, load):
    """Parameters (or velocity) between params (P,) and shared memory at sh[base:] with the
    padded layout of lay: load (global -> shared) or store. Index j on threadIdx.x."""
    for m in range(1, lay.shape[0]):
        n_out, n_in = lay[m, _D], lay[m - 1, _D]
        g, s, ld = lay[m, _GW], base + lay[m, _SW], lay[m, _LD]
        for k in range(t, n_out * (n_in + 1), T):
            if k < n_out * n_in:
                i = k // n_in
                p = s + i * ld + k - i * n_in
            else:
                p = s + n_out * ld + k - n_out * n_in  # bias
            if load:
                sh[p] = params[g + k]
            else:
                params[g + k] = sh[p]


@_device
def _fused_forward(pb, ab, lay, m, n, t, T, one):
    """z[m]_si = sum_j W_ij * a_sj + b_i, a = act(z) (not softmax), one thread per (s, i),
    i on threadIdx.x. W[m] in pb (rows of stride lay[m, _LD]: odd in shared memory, so
    the threads of a warp read distinct banks), activations in ab."""
    n_out, n_in = lay[m, _D], lay[m - 1, _D]
    w, ld, code = lay[m, _SW], lay[m, _LD], lay[m, _ACT]
    a_in, ld_in, a_out, ld_out = lay[m - 1, _SA], lay[m - 1, _LDA], lay[m, _SA], lay[m, _LDA]
    for e in range(t, n * n_out, T):
        s = e // n_out
        i = e - s * n_out
        acc = pb[w + n_out * ld + i]
        row, x = w + i * ld, a_in + s * ld_in
        for j in range(n_in):
            acc += pb[row + j] * ab[x + j]
        ab[a_out + s * ld_out + i] = acc if code == SOFTMAX else _activate(code, acc, one)


@_device
def _fused_delta(pb, ab, lay, m, n, t, T, one):
    """delta[m]_sj = act'(a_sj) * sum_i W[m+1]_ij * delta[m+1]_si, one thread per (s, j),
    j on threadIdx.x."""
    n_here, n_next = lay[m, _D], lay[m + 1, _D]
    w, ld, code = lay[m + 1, _SW], lay[m + 1, _LD], lay[m, _ACT]
    d, a, lda = lay[m, _SD], lay[m, _SA], lay[m, _LDA]
    d_next, ld_next = lay[m + 1, _SD], lay[m + 1, _LDA]
    for e in range(t, n * n_here, T):
        s = e // n_here
        j = e - s * n_here
        acc = one - one
        for i in range(n_next):
            acc += pb[w + i * ld + j] * ab[d_next + s * ld_next + i]
        ab[d + s * lda + j] = acc * _derivative(code, ab[a + s * lda + j], one)


@_device
def _fused_gradient(ab, lay, m, n, i, j, one):
    """sum_s delta[m]_si * a[m-1]_sj over the n samples of a piece (j = D[m-1]: the bias)."""
    n_in = lay[m - 1, _D]
    d, lda = lay[m, _SD], lay[m, _LDA]
    a, ld_in = lay[m - 1, _SA], lay[m - 1, _LDA]
    acc = one - one
    for s in range(n):
        x = ab[a + s * ld_in + j] if j < n_in else one
        acc += ab[d + s * lda + i] * x
    return acc


@_device
def _fused_backward(pb, gb, vb, ab, lay, n, first, last, scale, grad_at, vel_at, lr,
                    momentum, nesterov, l2, use_bias, t, T, one):
    """Per parameter (one thread each, j on threadIdx.x): the piece's gradient sum plus the
    earlier pieces' from the gradient buffer gb[grad_at:]; on the batch's last piece the
    update of pb (velocity in vb[vel_at:]), else the sum goes into the buffer."""
    for m in range(1, lay.shape[0]):
        n_out, n_in = lay[m, _D], lay[m - 1, _D]
        w, ld = lay[m, _SW], lay[m, _LD]
        for k in range(t, n_out * (n_in + 1), T):
            i = k // (n_in + 1)
            j = k - i * (n_in + 1)
            p = w + i * ld + j if j < n_in else w + n_out * ld + i
            g = _fused_gradient(ab, lay, m, n, i, j, one)
            if not first:
                g += gb[grad_at + p]
            if not last:
                gb[grad_at + p] = g
            elif j < n_in or use_bias:
                g = scale * g + l2 * pb[p] if j < n_in else scale * g
                v = vb[vel_at + p] if vel_at >= 0 else one - one
                pb[p], v = _sgd_step(pb[p], g, v, lr, momentum, nesterov, one)
                if vel_at >= 0:
                    vb[vel_at + p] = v


@_jit(cache=True)
def _fused_epoch(params, velocity, grad, X, Y, order, batch_size, lay, rows, in_shared,
                 grad_at, vel_at, costs_at, loss, lr, momentum, nesterov, l2, use_bias, stats):
    """train_epoch in one launch of one block: every batch -- forward, costs and output
    deltas, hidden deltas, gradients and update -- in phases separated by syncthreads, a
    batch in pieces of at most ``rows`` samples whose activations and deltas stay in
    shared memory. Parameters (velocity, gradient buffer) in shared memory when in_shared,
    loaded once and stored at the end; else in params, velocity and grad. Layout from
    fused_plan; stats as train_epoch's."""
    sh = cuda.shared.array(0, params.dtype)
    sh64 = cuda.shared.array(0, _FLOAT64)  # the same memory: costs and stop flag at costs_at
    costs = sh64[costs_at:costs_at + rows]
    stop = sh64[costs_at + rows:costs_at + rows + 1]
    one = params.dtype.type(1)
    t, T = cuda.threadIdx.x, cuda.blockDim.x
    L = lay.shape[0] - 1
    n_in, n_out, code = lay[0, _D], lay[L, _D], lay[L, _ACT]
    binary = code == SIGMOID
    if in_shared:
        _fused_copy(sh, params, lay, 0, t, T, True)
        if vel_at >= 0:
            _fused_copy(sh, velocity, lay, vel_at, t, T, True)
        pb, gb, vb = sh, sh, sh
    else:
        pb, gb, vb = params, grad, velocity
    if t == 0:
        stop[0] = 0.0
    batch_cost = 0.0  # thread 0's
    n_total = order.shape[0]
    for start in range(0, n_total, batch_size):
        end = min(start + batch_size, n_total)
        for lo in range(start, end, rows):
            n = min(rows, end - lo)
            cuda.syncthreads()
            a0, ld0 = lay[0, _SA], lay[0, _LDA]
            for e in range(t, n * n_in, T):
                s = e // n_in
                sh[a0 + s * ld0 + e - s * n_in] = X[order[lo + s], e - s * n_in]
            cuda.syncthreads()
            for m in range(1, L + 1):
                _fused_forward(pb, sh, lay, m, n, t, T, one)
                cuda.syncthreads()
            a, d, ld = lay[L, _SA], lay[L, _SD], lay[L, _LDA]
            for s in range(t, n, T):
                if code == SOFTMAX:
                    _softmax_row(sh, a + s * ld, n_out, one)
                r = order[lo + s]
                costs[s] = _row_cost(sh, a + s * ld, Y, r, n_out, binary, loss)
                _row_output_delta(sh, d + s * ld, sh, a + s * ld, Y, r, n_out, code, loss, one)
            cuda.syncthreads()
            if t == 0:
                for s in range(n):
                    batch_cost += costs[s]
                if lo + n == end:
                    if math.isfinite(batch_cost):
                        stats[0] += batch_cost
                        stats[1] += end - start
                    else:
                        stats[2] = 1.0
                        stop[0] = 1.0
                    batch_cost = 0.0
            for m in range(L - 1, 0, -1):
                _fused_delta(pb, sh, lay, m, n, t, T, one)
                cuda.syncthreads()
            cuda.syncthreads()
            if stop[0] != 0:
                break
            _fused_backward(pb, gb, vb, sh, lay, n, lo == start, lo + n == end,
                            one / params.dtype.type(end - start), grad_at, vel_at, lr,
                            momentum, nesterov, l2, use_bias, t, T, one)
        if stop[0] != 0:
            break
    cuda.syncthreads()
    if in_shared:
        _fused_copy(sh, params, lay, 0, t, T, False)
        if vel_at >= 0:
            _fused_copy(sh, velocity, lay, vel_at, t, T, False)
