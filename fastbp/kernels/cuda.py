"""numba.cuda backend: the kernels of the backend contract on NVIDIA GPUs.

Same names, argument order and layouts as ``fastbp.kernels.loop`` (see ``fastbp.kernels``).
Every public kernel takes device arrays (from ``empty`` / ``to_device``: nothing is
copied) or host NumPy arrays (copied to the GPU once per call; the outputs are copied
back into the same host arrays): the memory hooks and these copies are ``cuda_memory.py``.
``sizes`` and ``acts`` arrive as small host int64 arrays; their device copies and the
offsets derived from them are cached (``_Net``).

Two ways through an epoch (``train_epoch``):

- per-layer launches (``cuda_layers.py``), for any network: per batch, a gather of the
  batch's rows, one tiled launch per layer forward, one for the costs and output errors,
  one per hidden layer backward, one per layer of outer-product gradients, one update
  over all parameters. Costs are summed and checked for finiteness on the device, so the
  host never waits inside an epoch.
- one fused launch per epoch (``cuda_fused.py``), for online and small batches with any
  optimizer when ``fused_plan`` allows: a single thread block runs every batch.

Many models at once (``sweep_epoch``, fastbp.Sweep): one launch per epoch for K models of
one structure, a thread block per model (``cuda_sweep.py``), laid out and configured by
``cuda_sweep_plan.py`` (its shared memory, its threads).

Device arrays kept between calls (shapes' sizes and plans, scratch) live in
``cuda_config.device_cache()``, which starts afresh after ``cuda.close()``, on another
device and in a forked child. A fit that ``cuda_config.prefers_cpu`` says would run faster
on the CPU warns once (``SlowOnGPUWarning``).

Tunables live in ``cuda_config.py``. Importing this module imports ``numba.cuda`` (only the
``cuda*`` modules do); without numba-cuda it still imports, and ``require()`` says what to
install.
"""
import warnings
import weakref

import numpy as np

from fastbp.kernels import _checks, codes
from fastbp.kernels import cuda_config as config
from fastbp.kernels import cuda_fused, cuda_layers, cuda_sweep, cuda_sweep_plan
from fastbp.kernels.cuda_config import cuda, launch
from fastbp.kernels.cuda_memory import (copy_back, host_array, no_stop, on_device, scratch_array,
                                        set_steps, to_device, workspace_rows)
from fastbp.kernels.cuda_memory import empty, to_host  # noqa: F401  (memory hooks, re-exported)
from fastbp.kernels.cuda_sweep_plan import allow_shared, sweep_budget, sweep_threads
# A sweep's sample orders, drawn on the host exactly as the loop backend draws them.
from fastbp.kernels.loop import next_order  # noqa: F401


def require():
    """Raise RuntimeError unless numba-cuda is installed and a GPU (or the simulator) is found."""
    if cuda is None:
        raise RuntimeError(
            "the 'cuda' backend needs numba-cuda, which is not installed "
            f"({config.IMPORT_ERROR}); install it with: pip install \"fastbp[cuda]\" "
            "(from a source checkout: pip install \".[cuda]\")")
    if not cuda.is_available():
        raise RuntimeError(
            "the 'cuda' backend found no usable CUDA GPU (numba.cuda.is_available() is "
            "False: no NVIDIA GPU, or no driver; \"fastbp[cuda]\" needs driver >= 525 for "
            "CUDA 12, \"fastbp[cuda13]\" >= 580). Use backend='loop', or set "
            "NUMBA_ENABLE_CUDASIM=1 before numba is imported to run the CUDA simulator.")


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


def _net(sizes, acts=()):
    """The _Net of a shape, kept in the current context's device cache."""
    nets = config.device_cache().setdefault("nets", {})
    key = (np.asarray(sizes, np.int64).tobytes(), np.asarray(acts, np.int64).tobytes())
    net = nets.get(key)
    if net is None:
        net = nets[key] = _Net(sizes, acts)
    return net


# -- the kernels of the backend contract --------------------------------------------------------

def forward(A, params, n, sizes, acts):
    """z[m]_i = sum_j W[m]_ij * a[m-1]_j + b[m]_i,  a[m] = act_m(z[m]),  m = 1..L.

    A       (>= n * sum(D),)  block 0 holds the inputs; blocks 1..L overwritten
    params  (P,)              weights and biases
    """
    if n == 0:
        return
    net = _net(sizes, acts)
    dA, dp = on_device(A, params)
    cuda_layers.launch_forward(dA, dp, n, net)
    copy_back(dA, A)


def sample_costs(cost, A, Y, n, sizes, acts, loss):
    """cost_s = C(a[L], y) per sample: 0.5 * sum (y - a)^2, or the cross-entropy (float64).

    cost  (>= n,) float64  out, overwritten
    A     (>= n * sum(D),) after ``forward``
    Y     (n, D[L])        targets
    """
    _per_sample(cuda_layers.launch_cost_rows, cost, A, Y, n, sizes, acts, loss)


def output_delta(Dl, A, Y, sw, n, sizes, acts, loss):
    """delta[L] = sw (*) dC/da[L] (*) act_L'(z[L]); a[L] - y for softmax or sigmoid +
    cross-entropy, times the sample's weight.

    Dl  (>= n * sum(D),)  block L overwritten
    A   (>= n * sum(D),)  after ``forward``
    Y   (n, D[L])         targets
    sw  (n,) or (0,)      per-sample weights; empty: every weight 1
    """
    _per_sample(cuda_layers.launch_output_delta_rows, Dl, A, Y, n, sizes, acts, loss,
                to_device(sw))


def _per_sample(launcher, out, A, Y, n, sizes, acts, loss, *extra):
    """``out`` from a[L] and Y by a launch of one thread per sample."""
    if n == 0:
        return
    d_out, dA, dY = on_device(out, A, Y)
    launcher(d_out, dA, dY, *extra, n, _net(sizes, acts), int(loss))
    copy_back(d_out, out)


def hidden_deltas(Dl, A, params, n, sizes, acts):
    """delta[m]_j = act_m'(z[m]_j) * sum_i W[m+1]_ij * delta[m+1]_i,  m = L-1..1.

    Dl      (>= n * sum(D),)  block L given (``output_delta``); blocks L-1..1 overwritten
    A       (>= n * sum(D),)  after ``forward``
    params  (P,)              the weights of the forward pass
    """
    if n == 0:
        return
    net = _net(sizes, acts)
    dD, dA, dp = on_device(Dl, A, params)
    cuda_layers.launch_hidden_deltas(dD, dA, dp, n, net)
    copy_back(dD, Dl)


def accumulate_gradients(grad, Dl, A, n, sizes):
    """dC/dW[m]_ij += delta[m]_i * a[m-1]_j,  dC/db[m]_i += delta[m]_i, summed over n samples.

    grad  (P,)               in/out: sums are added to it (zero it first)
    Dl    (>= n * sum(D),)   after ``output_delta`` and ``hidden_deltas``
    A     (>= n * sum(D),)   after ``forward``
    """
    if n == 0:
        return
    net = _net(sizes)
    dg, dD, dA = on_device(grad, Dl, A)
    parts = scratch_array("parts", cuda_layers.split_for(n, net).size, dg.dtype)
    cuda_layers.launch_grads(dg, dD, dA, n, net, True, parts)
    copy_back(dg, grad)


def update(params, state, steps, grad, sizes, scale, opt, hyper, use_bias):
    """One optimizer step on every parameter (see loop.update): SGD, Adam or RPROP.

    params  (P,)       in/out
    state   (2, P)     in/out optimizer state
    steps   (1,) int64 in/out: updates made so far, incremented here
    grad    (P,)       summed gradient of the batch; scale = 1 / batch size
    hyper   (N_HYPER,) float64 hyperparameters (host array)
    """
    net = _net(sizes)
    dp, ds, dg = on_device(params, state, grad)
    t = int(host_array(steps)[0]) + 1
    scales = cuda.to_device(np.array([scale], dp.dtype))
    cuda_layers.launch_update(dp, ds, dg, net, scales, 0, int(opt), hyper, t, bool(use_bias),
                              no_stop())
    copy_back(dp, params)
    copy_back(ds, state)
    set_steps(steps, t)


def train_epoch(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order, batch_size,
                sizes, acts, loss, opt, hyper, use_bias, stats):
    """One epoch, as loop.train_epoch (same arguments; ``hyper`` stays on the host). Any
    optimizer runs as one fused launch when ``fused_plan`` allows; everything else as
    per-layer launches over pieces of at most WORK_ROWS samples. After a batch whose cost
    is not finite no update is applied, that batch's nor any later one's.
    """
    net = _net(sizes, acts)
    dev = on_device(params, state, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order, stats)
    dp, ds, dg, dA, dD, dc, dYb, dSb, dX, dY, dSW, dorder, dstats = dev
    dtype = dp.dtype
    t0 = int(host_array(steps)[0])
    dstats.copy_to_device(np.zeros(4))
    n_total = int(dorder.shape[0])
    batch_size = int(batch_size)
    _warn_if_slow(stats, sizes, batch_size)
    scales = _batch_scales(SW, order, n_total, batch_size, dtype)
    d_scales = cuda.to_device(scales)
    plan = fused_plan(batch_size, sizes, acts, dtype, _state_rows(opt, hyper))
    if n_total and plan is not None:
        launch(cuda_fused.fused_epoch, 1, config.FUSED_THREADS, plan.nbytes)(
            dp, ds[0], ds[1], dg, dX, dY, dSW, dorder, d_scales, batch_size, plan.lay, plan.rows,
            plan.in_shared, plan.grad_at, plan.s0_at, plan.s1_at, plan.red_at, plan.costs_at,
            int(loss), int(opt), cuda.to_device(np.asarray(hyper, np.float64)), t0,
            bool(use_bias), dstats)
    elif n_total:
        _per_layer_epoch(net, dp, ds, t0, dg, dA, dD, dc, dYb, dSb, dX, dY, dSW, dorder,
                         scales, d_scales, batch_size, int(loss), int(opt), hyper,
                         bool(use_bias), dstats)
    for device, host in ((dp, params), (ds, state), (dg, grad), (dstats, stats)):
        copy_back(device, host)
    batches = -(-int(host_array(dstats)[1]) // batch_size)
    set_steps(steps, t0 + int(np.count_nonzero(scales[:batches])))  # the updates applied


def _state_rows(opt, hyper):
    """Optimizer state rows an update reads and writes: Adam and RPROP 2, SGD with momentum
    1 (the velocity), plain SGD none."""
    if int(opt) in (codes.ADAM, codes.RPROP):
        return 2
    return int(hyper[codes.H_MOMENTUM] != 0)


_WARNED = {}  # id -> weak reference of the stats arrays of fits warned about: one per fit


def _warn_if_slow(stats, sizes, batch_size):
    """SlowOnGPUWarning, once per fit (a fit's stats array), where prefers_cpu says so."""
    if config.ROUTING_WARNINGS is False or (config.ROUTING_WARNINGS is None
                                            and config.SIMULATOR):
        return
    seen = _WARNED.get(id(stats))
    if seen is not None and seen() is stats:
        return
    try:
        _WARNED[id(stats)] = weakref.ref(stats)
    except TypeError:  # a host array: no weak reference, so a warning per call
        pass
    if len(_WARNED) > 1024:
        for key in [k for k, ref in _WARNED.items() if ref() is None]:
            del _WARNED[key]
    if config.prefers_cpu(sizes, batch_size):
        cpu, gpu = config.step_seconds(sizes, batch_size)
        shape = "-".join(str(int(d)) for d in sizes)
        warnings.warn(
            f"training {shape} with batches of {batch_size} on the GPU is likely slower than "
            f"on the CPU: backend='loop' is the faster choice here (a step's arithmetic takes "
            f"the CPU about {cpu * 1e6:.1g} us, the GPU pays about {gpu * 1e6:.1g} us of "
            f"launches and barriers; cuda_config.prefers_cpu)",
            config.SlowOnGPUWarning, stacklevel=3)


def _batch_scales(SW, order, n_total, batch_size, dtype):
    """The update scale of each batch of an epoch, on the host: 1 / its summed weight (1 /
    its size without weights), 0 for a batch of weight 0, which makes no update."""
    dt = np.dtype(dtype).type
    if not len(SW):
        sizes = np.full(-(-n_total // batch_size), batch_size)
        sizes[-1] = n_total - batch_size * (len(sizes) - 1)
        return (dt(1) / sizes.astype(dtype)).astype(dtype)
    weights = host_array(SW)[host_array(order)].astype(np.float64)
    sums = np.add.reduceat(weights, np.arange(0, n_total, batch_size)).astype(dtype)
    with np.errstate(divide="ignore"):
        return np.where(sums > 0, dt(1) / sums, dt(0)).astype(dtype)


def _per_layer_epoch(net, params, state, t0, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order,
                     scales, d_scales, batch_size, loss, opt, hyper, use_bias, stats):
    """train_epoch with per-layer launches; arrays on the device (scales also on the host),
    t0 updates made before."""
    rows = min(workspace_rows(batch_size), int(Yb.shape[0]))
    running = cuda.device_array(2, np.float64)
    sw = Sb if SW.shape[0] else SW
    n_total = int(order.shape[0])
    t = t0
    for k, start in enumerate(range(0, n_total, batch_size)):
        stop = min(start + batch_size, n_total)
        split = None
        for lo in range(start, stop, rows):
            nb = min(rows, stop - lo)
            cuda_layers.launch_gather_rows(A, Yb, Sb, X, Y, SW, order, lo, nb, net)
            cuda_layers.launch_forward(A, params, nb, net, softmax=False)
            cuda_layers.launch_cost_delta_rows(cost, Dl, A, Yb, sw, nb, net, loss)
            cuda_layers.launch_sum_costs(stats, running, cost, sw, nb, stop - start,
                                         lo == start, lo + nb == stop)
            cuda_layers.launch_hidden_deltas(Dl, A, params, nb, net)
            one_piece = lo == start and lo + nb == stop  # the update sums the chunks
            parts = scratch_array("parts", cuda_layers.split_for(nb, net).size, params.dtype)
            split = cuda_layers.launch_grads(grad, Dl, A, nb, net, lo > start, parts,
                                             reduce=not one_piece)
            split = split if one_piece else None
        if scales[k] != 0:
            t += 1
            cuda_layers.launch_update(params, state, grad, net, d_scales, k, opt, hyper, t,
                                      use_bias, stats, parts, split)


def fused_plan(batch_size, sizes, acts, dtype, n_state):
    """The plan of train_epoch's fused launch for this batch size (``cuda_fused.plan_for``;
    n_state optimizer state rows: 0 plain SGD, 1 momentum, 2 Adam or RPROP), or None for
    per-layer launches: always with FUSED False, and with FUSED None when batch_size * P
    exceeds FUSED_MAX_WORK (the per-layer launches then spread a batch over the whole
    GPU) or a piece of one sample does not fit in shared memory."""
    if config.FUSED is False or cuda is None:
        return None
    config.check_tunables()  # tests and benchmarks change them after import
    net = _net(sizes, acts)
    if config.FUSED is None and batch_size * net.P > config.FUSED_MAX_WORK:
        return None
    return cuda_fused.plan_for(net, batch_size, dtype, n_state)


# -- many models at once (fastbp.Sweep) ---------------------------------------------------------

def sweep_epoch(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, orders, active,
                batch_size, sizes, acts, loss, opt, hyper, use_bias, stats):
    """One epoch of K models of one structure in one launch, as loop.sweep_epoch (same
    arguments and layouts; model k is train_epoch on row k, its own order and
    hyperparameters): a thread block per model (cuda_sweep.sweep_epoch_kernel), so model
    k's result does not depend on K, on the other models or on the device, and equals its
    K = 1 launch bit for bit. Models with active[k] false are left untouched.

    params, state, steps, stats, hyper, active, orders, X, Y, SW: host arrays (copied to
    the GPU, the outputs params, state, steps and stats copied back into them) or device
    arrays (nothing copied: keep X, Y and orders on the device across epochs to spare the
    transfers). grad, A, Dl, cost, Yb and Sb are the CPU backends' workspaces: not used
    (the kernel keeps its own in shared memory and in a cached scratch array), so any rows
    do, none included (sweep_workspace_rows); their contents are not part of the result,
    in either backend. The sample orders come from ``next_order`` (loop's, re-exported).
    """
    K = int(params.shape[0])
    _check_sweep(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, orders, active,
                 hyper, stats, batch_size, sizes, acts)
    if K == 0:
        return
    net = _net(sizes, acts)
    dtype = np.dtype(params.dtype)
    n_state = cuda_sweep_plan.state_rows(opt, host_array(hyper))
    dev = on_device(params, state, steps, stats, X, Y, SW, orders, active)
    dp, ds, dsteps, dstats, dX, dY, dSW, dorders, dactive = dev
    dhyper = to_device(np.ascontiguousarray(hyper, np.float64)
                       if isinstance(hyper, np.ndarray) else hyper)
    kernel = cuda_sweep.sweep_epoch_kernel
    for budget in (None, config.BLOCK_SHARED_BYTES):  # the second: where opting in fails
        plan = _sweep_plan(net, batch_size, dtype, n_state, loss, opt, use_bias, budget)
        if plan is None:  # one sample's activations exceed a block's shared memory
            _sweep_by_model(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, orders,
                            active, batch_size, sizes, acts, loss, opt, hyper, use_bias, stats)
            return
        width = max(plan.scratch, 1)
        scratch = scratch_array("sweep", K * width, dtype)[:K * width].reshape(K, width)
        args = (dp, ds, scratch, dX, dY, dSW, dorders, dactive, dhyper, dsteps, dstats,
                plan.lay, plan.cfg)
        if allow_shared(kernel, args, plan.nbytes):
            break
    threads = sweep_threads(kernel, args, plan, K)
    config.launch(kernel, K, threads, plan.nbytes)(*args)
    config.device_cache()["last_sweep"] = dict(models=K, mode=plan.mode, rows=plan.rows,
                                                threads=threads, shared_bytes=plan.nbytes)
    for device, host in ((dp, params), (ds, state), (dsteps, steps), (dstats, stats)):
        copy_back(device, host)


def last_sweep_launch():
    """How the last sweep_epoch launch of this context ran (models, where the parameters
    lived, samples per piece, threads, shared bytes per block), for benchmarks and
    diagnostics; None before the first."""
    return config.device_cache().get("last_sweep")


def sweep_workspace_rows(batch_size):
    """Rows sweep_epoch needs in the workspaces A, Dl, cost, Yb and Sb: none, the sweep
    kernel keeps its own (arrays of K rows of 0 do); workspace_rows is train_epoch's."""
    return 0


def _check_sweep(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, orders, active,
                 hyper, stats, batch_size, sizes, acts):
    """loop.sweep_epoch's checks (_checks.sweep), with workspaces of any rows
    (sweep_workspace_rows); the sample indices of orders only where orders is a host array
    (a device array's values stay on the device)."""
    K = int(params.shape[0])
    on_host = isinstance(orders, np.ndarray)
    _checks.sweep(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW,
                  orders if on_host else np.zeros((K, 0), np.int64), active, hyper, stats,
                  batch_size, sizes, acts, sweep_workspace_rows(batch_size))
    if not on_host and (orders.ndim != 2 or orders.shape[0] != K
                        or orders.shape[1] > X.shape[0]):
        raise ValueError(f"kernel orders have shape {orders.shape}; expected ({K}, n <= "
                         f"{X.shape[0]})")
    if np.dtype(params.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"kernel buffer params has dtype {params.dtype}; float32 or float64")


def _sweep_plan(net, batch_size, dtype, n_state, loss, opt, use_bias, budget=None):
    """cuda_sweep_plan.plan_for with this device's budget (or the one given)."""
    config.check_tunables()
    return cuda_sweep_plan.plan_for(net, int(batch_size), dtype, n_state, int(loss), int(opt),
                                    bool(use_bias), sweep_budget() if budget is None else budget)


def _sweep_by_model(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, orders,
                    active, batch_size, sizes, acts, loss, opt, hyper, use_bias, stats):
    """sweep_epoch one model at a time through train_epoch, for networks too wide for the
    sweep kernel's shared memory (host arrays)."""
    host = [host_array(a) for a in (params, state, steps, stats, orders, active)]
    hp, hs, hsteps, hstats, horders, hactive = host
    hyper, grad = host_array(hyper), host_array(grad)
    for k in np.flatnonzero(hactive):
        train_epoch(hp[k], hs[k], hsteps[k], grad[k], A[k], Dl[k], cost[k], Yb[k], Sb[k], X, Y,
                    SW, horders[k], batch_size, sizes, acts, loss, opt, hyper[k], use_bias,
                    hstats[k])
    for array, h in zip((params, state, steps, stats), host[:4]):
        if not isinstance(array, np.ndarray):
            array.copy_to_device(h)
