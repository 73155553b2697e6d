"""The sweep kernel's host side (cuda_sweep.py): how a model's block is laid out and how a
launch is configured.

``plan_for`` makes a ``SweepPlan``: the layout table ``lay`` and the plan slots ``cfg``
defined below, which the kernel reads, the samples per piece of a batch and the threads of
a block. ``sweep_budget`` is the shared memory a block may plan with on this device,
``allow_shared`` opts a kernel into more than 48 KiB of it, ``sweep_threads`` fits a
launch's blocks to the SMs. ``cuda.sweep_epoch`` launches the kernel; ``cuda_sweep``
re-exports ``plan_for``.

Where things live (``plan_for`` chooses, per network, batch size and optimizer):

- shared memory, always: a piece of the batch (the whole batch, or pieces of at most
  SWEEP_MAX_ROWS samples when it is larger) -- its activations a[0..L] and deltas
  delta[1..L], each row padded to an odd stride so that lanes reading down a column hit
  distinct banks, with a last column of ones after a[m] for m < L, so that the bias is
  column D[m-1] of the gradient product -- and the per-sample costs;
- shared memory when they fit (mode "all"): the parameters, each W[m] row padded to an
  odd stride with b[m]_i as its last column, and the optimizer state in the same layout;
  mode "params": the parameters alone, the state in global memory; mode "none": all in
  global memory (params, state), with a transposed copy of each W in a per-model scratch
  row so that the forward pass reads W coalesced (lanes over units) and the delta pass
  reads W itself (lanes over inputs), as loop_online keeps both layouts on the CPU;
- a batch in several pieces sums its gradient in a per-model scratch row (global memory)
  before the one update.

Above the 48 KiB a block gets by default, shared memory is opted into through the
driver's attribute (MAX_DYNAMIC_SHARED_SIZE_BYTES) up to the device's maximum; where that
fails, the plan is made again within 48 KiB.
"""
from typing import NamedTuple

import numpy as np

from fastbp.kernels import cuda_config as config
from fastbp.kernels.codes import ADAM, H_MOMENTUM, RPROP
from fastbp.kernels.cuda_config import cdiv, cuda

WARP = 32
RA = config.SWEEP_TILE_ROWS  # output rows per thread in the products: compile-time
N_CST = 16  # shared constants of an update: the 15 fields of scalar.Step, then its scale

# Columns of the layout table ``lay`` (L + 1, 12), row m for layer m (int64):
(LAY_D, LAY_ACT, LAY_W, LAY_B, LAY_SW, LAY_LDW, LAY_SA, LAY_LDA, LAY_SD, LAY_LDD, LAY_LG,
 LAY_LGG) = range(12)
#   D[m]; activation code of layer m; offsets of W[m] and of b[m] in params (the flat layout
#   of the backend contract); offset of W[m] in the padded shared layout and its row stride
#   (odd, > D[m-1]: b[m]_i is column D[m-1] of row i); offset of block m of the activations
#   in shared memory and its row stride (odd, > D[m]: column D[m] holds ones); the same for
#   the deltas (stride odd, >= D[m]); log2 of the lane group width of the forward and delta
#   products (columns D[m]) and of the gradient product (columns D[m-1] + 1).

# Slots of the per-plan int64 array ``cfg`` (one device array instead of many scalar
# arguments: numba's host cost grows with every argument of a launch).
(C_BATCH, C_ROWS, C_LOSS, C_OPT, C_BIAS, C_PSH, C_SSH, C_NSTATE, C_S0, C_S1,
 C_GBUF, C_WT, C_COSTS, C_CST, C_LGW, N_CFG) = range(16)
#   batch size, samples per piece, loss code, optimizer code, use_bias; parameters in
#   shared memory, state in shared memory (0/1); state rows used (0 plain SGD, 1 momentum,
#   2 Adam and RPROP); shared offsets of state rows 0 and 1; scratch offsets of the
#   gradient buffer and of W^T (-1: none); offset in float64 elements of the costs, which
#   thread 0's tallies follow (T_*); offset of the update constants in working-dtype
#   elements; log2 of the warp width min(32, threads).

# Thread 0's tallies of an epoch, float64 slots after the costs (shared memory rather than
# registers: the kernel keeps as little as it can live across its phases, see
# ``sweep_epoch_kernel``).
T_STOP, T_COST, T_SEEN, T_WEIGHT, T_BATCH_COST, T_BATCH_WEIGHT, T_STEP, N_T = range(8)
#   a batch's cost was not finite (1.0); sum of weighted costs, samples and weights of the
#   batches applied; the running batch's cost and weight; the updates made (Adam's t).


# -- the plan ---------------------------------------------------------------------------------

class SweepPlan(NamedTuple):
    """How sweep_epoch lays out one model's block (see plan_for)."""
    lay: object       # (L + 1, 12) int64 device array, columns LAY_D..LAY_LGG
    cfg: object       # (N_CFG,) int64 device array, slots C_*
    mode: str         # "all", "params" or "none": what lives in shared memory
    rows: int         # samples per piece of a batch
    threads: int      # threads per block
    nbytes: int       # dynamic shared memory per block
    scratch: int      # scratch elements per model (gradient buffer, W^T)


def _pow2_log(n):
    """log2 of the smallest power of two >= n, at most log2(WARP)."""
    return min(max(int(n) - 1, 0).bit_length(), WARP.bit_length() - 1)


def _odd(n):
    return int(n) | 1


def state_rows(opt, hyper):
    """Optimizer state rows the models' updates read and write: Adam and RPROP 2, SGD 1 if
    any model has momentum (hyper (K, N_HYPER)), else 0."""
    if int(opt) in (ADAM, RPROP):
        return 2
    return int(np.any(np.asarray(hyper)[:, H_MOMENTUM] != 0))


def plan_for(net, batch_size, dtype, n_state, loss, opt, use_bias, budget):
    """The SweepPlan of a network (``cuda._Net``) for this batch size, optimizer (n_state
    state rows), loss, use_bias and shared-memory budget in bytes, or None where a piece of
    one sample does not fit; made once and kept in ``net.plans``.

    A piece is the whole batch, or SWEEP_MAX_ROWS samples, or as many as fit in 48 KiB
    beside nothing else -- never more: the pieces decide how a batch's gradient is summed,
    so they depend on the network, dtype and batch size alone, not on the device's shared
    memory or on the other models of the launch (their momentum decides n_state), and a
    model's bits do not either. Where things live changes no bit, so the mode is the first
    of "all" (parameters and state in shared memory), "params", "none" that fits the budget
    beside the piece; SWEEP_IN_SHARED names one instead.
    """
    item = np.dtype(dtype).itemsize
    key = ("sweep", int(batch_size), item, int(n_state), int(loss), int(opt), bool(use_bias),
           int(budget), config.SWEEP_MAX_ROWS, config.SWEEP_THREADS, config.SWEEP_IN_SHARED)
    if key not in net.plans:
        net.plans[key] = _make_plan(net, int(batch_size), item, int(n_state), int(loss),
                                    int(opt), bool(use_bias), int(budget))
    return net.plans[key]


# Shared memory every CUDA GPU gives a block without opting in: the pieces are cut to fit
# it, so that they are the same on every device.
PIECE_BYTES = 48 * 1024


def _make_plan(net, batch_size, item, n_state, loss, opt, use_bias, budget):
    D, L = net.D, net.L
    ldw = [0] + [_odd(D[m - 1] + 1) for m in range(1, L + 1)]
    lda = [_odd(d + 1) for d in D]
    ldd = [0] + [_odd(d) for d in D[1:]]
    p_sh = sum(D[m] * ldw[m] for m in range(1, L + 1))  # padded parameters
    per_row = sum(lda) + sum(ldd)  # a sample's activations and deltas

    def bytes_for(elements, rows):  # + the update constants, the costs and the stop flag
        return cdiv((elements + rows * per_row + N_CST) * item, 8) * 8 + 8 * (rows + N_T)

    rows = min(batch_size, config.SWEEP_MAX_ROWS)
    while rows >= 1 and bytes_for(0, rows) > min(PIECE_BYTES, budget):
        rows -= 1
    if rows < 1:
        return None
    sizes = {"all": p_sh * (1 + n_state), "params": p_sh, "none": 0}
    if config.SWEEP_IN_SHARED is not None:
        mode = config.SWEEP_IN_SHARED
    else:
        modes = ["all", "params", "none"] if n_state else ["all", "none"]
        mode = next(name for name in modes if bytes_for(sizes[name], rows) <= budget)
    psh, ssh = mode != "none", mode == "all" and n_state > 0
    lay = np.zeros((L + 1, 12), np.int64)
    sw, sa = 0, sizes[mode]
    sd = sa + rows * sum(lda)
    for m in range(L + 1):
        lay[m, LAY_D], lay[m, LAY_SA], lay[m, LAY_LDA] = D[m], sa, lda[m]
        lay[m, LAY_LG] = _pow2_log(D[m])
        sa += rows * lda[m]
        if m >= 1:
            lay[m, LAY_ACT], lay[m, LAY_W] = net.acts[m - 1], net.w[m]
            lay[m, LAY_B] = net.w[m] + D[m] * D[m - 1]
            lay[m, LAY_SW], lay[m, LAY_LDW] = sw, ldw[m]
            lay[m, LAY_SD], lay[m, LAY_LDD] = sd, ldd[m]
            lay[m, LAY_LGG] = _pow2_log(D[m - 1] + 1)
            sw += D[m] * ldw[m]
            sd += rows * ldd[m]
    cst = sd
    costs = cdiv((cst + N_CST) * item, 8)
    pieces = rows < batch_size
    gbuf = 0 if pieces else -1
    wt = (net.P if pieces else 0) if mode == "none" else -1
    scratch = (net.P if pieces else 0) + (net.P if wt >= 0 else 0)
    cfg = np.zeros(N_CFG, np.int64)
    cfg[[C_BATCH, C_ROWS, C_LOSS, C_OPT, C_BIAS]] = batch_size, rows, loss, opt, use_bias
    cfg[[C_PSH, C_SSH, C_NSTATE]] = psh, ssh, n_state
    cfg[C_S0] = p_sh if ssh and n_state >= 1 else -1
    cfg[C_S1] = 2 * p_sh if ssh and n_state >= 2 else -1
    cfg[[C_GBUF, C_WT, C_COSTS, C_CST]] = gbuf, wt, costs, cst
    threads = _threads(D, rows)
    cfg[C_LGW] = min(WARP, threads).bit_length() - 1
    return SweepPlan(cuda.to_device(lay), cuda.to_device(cfg), mode, rows, threads,
                     8 * (costs + rows + N_T), scratch)


def _threads(D, rows):
    """Threads per block: SWEEP_THREADS, or fewer warps where the largest product of a
    piece has fewer warp-sized tiles (the smallest networks then run a warp per model)."""
    T = config.SWEEP_THREADS
    width = min(WARP, T)
    lgw = width.bit_length() - 1
    tiles = 0
    for m in range(1, len(D)):
        for n_rows, cols in ((rows, D[m]), (D[m], D[m - 1] + 1)):
            lg = min(_pow2_log(cols), lgw)
            tile_rows = RA << (lgw - lg)
            tiles = max(tiles, cdiv(n_rows, tile_rows) * cdiv(cols, 1 << lg))
    return min(T, width * max(1, tiles))


# -- the launch: shared memory and threads ----------------------------------------------------

def sweep_budget():
    """Shared memory per block the sweep kernel may plan with, in bytes: SWEEP_SHARED_BYTES,
    else the device's opt-in maximum (the simulator: a block's default 48 KiB)."""
    if config.SWEEP_SHARED_BYTES is not None:
        return int(config.SWEEP_SHARED_BYTES)
    if config.SIMULATOR:
        return config.BLOCK_SHARED_BYTES
    cache = config.device_cache()
    if "sweep_budget" not in cache:
        device = cuda.get_current_device()
        optin = getattr(device, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", 0) or 0
        cache["sweep_budget"] = max(int(optin), config.BLOCK_SHARED_BYTES)
    return cache["sweep_budget"]


def _compiled(kernel, args):
    """The driver function of ``kernel`` compiled for ``args`` (compiling it if need be),
    or None where this numba-cuda does not say."""
    try:
        compiled = kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
        return compiled._codelibrary.get_cufunc()
    except Exception:  # an unexpected numba-cuda
        return None


def allow_shared(kernel, args, nbytes):
    """Let ``kernel`` (compiled here for ``args``) take nbytes of dynamic shared memory:
    above the default 48 KiB through the driver's MAX_DYNAMIC_SHARED_SIZE_BYTES attribute,
    once per compiled kernel and size. False where the driver (or this numba-cuda) does
    not allow it."""
    if nbytes <= config.BLOCK_SHARED_BYTES or config.SIMULATOR:
        return True
    cufunc = _compiled(kernel, args)
    if cufunc is None:
        return False
    cache = config.device_cache().setdefault("shared_opt_in", {})
    key = (id(cufunc), nbytes)
    if key not in cache:
        cache[key] = _set_max_dynamic_shared(cufunc, nbytes)
    return cache[key]


def sweep_threads(kernel, args, plan, K):
    """Threads per block of a sweep launch of K models: the plan's, or half of it (down to
    one warp) where that lets one wave of blocks hold all K models and the plan's does
    not -- a second, partial wave would leave most SMs idle while it runs. The driver's
    occupancy calculator says how many blocks an SM holds (registers, shared memory).
    Threads change no bit of a model's result (cuda_sweep: each sum's owner depends on the
    lane layout, which stays min(32, threads) wide)."""
    if config.SIMULATOR or plan.threads <= 32:
        return plan.threads
    cache = config.device_cache().setdefault("sweep_threads", {})
    key = (id(plan), K)  # plans live as long as their network's cache
    if key not in cache:
        cache[key] = plan.threads
        cufunc = _compiled(kernel, args)
        try:
            ctx = cuda.current_context()
            sms = ctx.device.MULTIPROCESSOR_COUNT
            threads = plan.threads
            while threads >= 32:
                active = ctx.get_active_blocks_per_multiprocessor(cufunc, threads, plan.nbytes)
                if active * sms >= K:
                    cache[key] = threads
                    break
                threads //= 2
        except Exception:  # no occupancy calculator here: the plan's threads
            pass
    return cache[key]


def _set_max_dynamic_shared(cufunc, nbytes):
    """cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES) on a compiled kernel, through
    whichever driver binding this numba-cuda has (CUkernel handles in numba-cuda >= 0.2x,
    CUfunction handles before); True when one took it."""
    from numba.cuda.cudadrv import driver as drv
    binding = getattr(drv, "binding", None)
    attr = None
    if binding is not None and hasattr(binding, "CUfunction_attribute"):
        attr = binding.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    else:
        from numba.cuda.cudadrv import enums
        attr = enums.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    handle = getattr(cufunc, "handle", None)
    tries = []
    if hasattr(drv.driver, "cuKernelSetAttribute"):
        tries.append(lambda: drv.driver.cuKernelSetAttribute(attr, nbytes, handle,
                                                             cufunc.device.id))
    if hasattr(drv.driver, "cuFuncSetAttribute"):
        tries.append(lambda: drv.driver.cuFuncSetAttribute(handle, attr, nbytes))
    for attempt in tries:
        try:
            attempt()
            return True
        except Exception:
            continue
    return False
