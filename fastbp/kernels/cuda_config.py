"""The numba.cuda import guard, kernel decorators, launch configurations, and every GPU
tunable of the cuda backend, each with its reason.

The kernels read the tunables from this module when they launch, so tests (and
benchmarks) can change them: the simulator tests shrink the blocks so that several run.
"""
import importlib.util
import os
import warnings

try:
    if importlib.util.find_spec("numba_cuda") is None:
        # numba's own numba.cuda is deprecated; the NVIDIA-maintained numba-cuda is needed.
        raise ImportError("No module named 'numba_cuda'")
    from numba import cuda
except ImportError as exc:  # pragma: no cover - depends on the environment
    cuda, IMPORT_ERROR = None, exc
else:
    IMPORT_ERROR = None

# -- tunables (none has been tuned on a GPU yet: each says why it has its value) ------------

# Threads per block of the 1-D kernels (gathers, costs, the update): 8 warps, enough to
# hide latency at the low register counts of these kernels. Untuned.
THREADS_PER_BLOCK = 256
# Side of the square thread blocks of the tiled layer kernels: 16 x 16 = 256 threads, each
# computing REGISTER_BLOCK x REGISTER_BLOCK outputs, so a block owns a 64 x 64 tile of
# outputs and loads two 16 x 65 slices per step along the summed index. The codegen test
# checks the kernels' registers allow TILE * TILE threads. Untuned.
TILE = 16
# Outputs per thread along each side of its register block (4 x 4 = 16 accumulators, 8
# shared-memory loads per 16 multiply-adds). A compile-time constant of the kernels:
# changing it needs a fresh process (and cache). The CPU kernels' 4 x 4 tiles, kept; untuned.
REGISTER_BLOCK = 4
# Gradient of a layer: when its tiles alone make fewer than GRAD_SPLIT_BLOCKS blocks, the
# samples are split into chunks (blockIdx.z) summed afterwards in a fixed order, so that a
# small layer over a large batch still fills the GPU: 2 blocks per SM of an H100 (132
# SMs). Untuned.
GRAD_SPLIT_BLOCKS = 264
# No chunk of samples shorter than this: a shorter one costs more in partial sums written
# and read back than its block's work. Untuned.
GRAD_SPLIT_MIN_ROWS = 256
# Threads of the fused epoch's single block: 8 warps, one output row of W per warp in the
# forward pass. A multiple of 32 (or a power of two below it: the warp-sum shuffles span
# min(32, threads) lanes). The codegen test checks the kernel's registers allow it. Untuned.
FUSED_THREADS = 256
# Dynamic shared memory the fused epoch may use: a block gets 48 KiB without opting in to
# more (cudaFuncSetAttribute); 4 KiB stay free for the runtime's own use.
FUSED_SHARED_BYTES = 44 * 1024
# Samples per piece of a batch in the fused epoch at most: bounds the per-sample cost
# array in shared memory and the serial cost sum of thread 0. Untuned.
FUSED_MAX_ROWS = 256
# batch_size * P above which the per-layer launches, which spread a batch over the whole
# GPU, beat the fused epoch's one block (about 2M multiply-adds per batch). A first
# estimate; untuned.
FUSED_MAX_WORK = 1 << 21
# Per-layer path: a batch is worked through in pieces of at most WORK_ROWS samples, summing
# their gradients before the one update; bounds the workspaces to WORK_ROWS * sum(D)
# values while keeping every launch large enough to fill the GPU. At most 65,535: the
# sample is blockIdx.y of the gather. Untuned.
WORK_ROWS = 8192
# Launch configurations kept (see ``launch``): each is a small object; the bound only keeps
# a long process with very many shapes from growing without end. Not performance-relevant.
MAX_CONFIGS = 4096

# -- routing: where a single small network trains faster (``prefers_cpu``) -------------------
# Provisional: no GPU has measured these; they come from the arithmetic of a step. Each
# says what it models.

# One core of the loop backend at online / small batches, float32: measured 17.5 GFLOP/s
# (64-32-10 online) to 43 GFLOP/s (784-128-10 online) in benchmarks/RESULTS.md; the low end.
CPU_FLOPS = 20e9
# A syncthreads-separated phase of the fused epoch (forward per layer, costs, delta per
# layer, update: 2 L + 2 of them per batch piece) with little work in it: shared-memory
# latency, a barrier and loop set-up, about 1 microsecond. Unmeasured.
PHASE_SECONDS = 1e-6
# One launch of the per-layer path, back to back on a stream: about 3 microseconds of
# launch overhead and ramp-up on current GPUs. Unmeasured.
LAUNCH_SECONDS = 3e-6
# What the fused epoch's one block (one SM) computes, weights read from L2: about a
# fifth of an SM's FP32 peak. Unmeasured.
FUSED_FLOPS = 100e9
# What the per-layer path computes over the whole GPU on mid-sized layers. Unmeasured.
GPU_FLOPS = 10e12


def step_seconds(sizes, batch_size):
    """(CPU, GPU) seconds of one training step of ``batch_size`` samples for a network of
    layer sizes ``sizes``, as modelled: the CPU does 6 P flop per sample at CPU_FLOPS; the
    GPU pays a floor per step -- 2 L + 2 phases of the fused epoch when it is taken
    (batch_size * P <= FUSED_MAX_WORK), else 3 L + 3 launches of the per-layer path
    (gather, L forward, cost, cost sum, L - 1 delta, L gradient, update) -- plus the same
    flop at its rate."""
    D = [int(d) for d in sizes]
    L, P = len(D) - 1, sum(D[m] * (D[m - 1] + 1) for m in range(1, len(D)))
    work = 6.0 * P * batch_size
    if batch_size * P <= FUSED_MAX_WORK:
        gpu = (2 * L + 2) * PHASE_SECONDS + work / FUSED_FLOPS
    else:
        gpu = (3 * L + 3) * LAUNCH_SECONDS + work / GPU_FLOPS
    return work / CPU_FLOPS, gpu


def prefers_cpu(sizes, batch_size):
    """Whether one network of layer sizes ``sizes`` trains faster with batches of
    ``batch_size`` on the CPU (backend="loop") than on the GPU, by ``step_seconds``.

    The rule: a GPU step has a floor -- the launches or barrier phases that a step needs
    whatever its size -- and a network small enough that its arithmetic per step takes
    the CPU less than that floor runs faster on the CPU. With the provisional constants:
    64-32-10 online (0.7 us of CPU arithmetic against a 6 us floor) prefers the CPU;
    784-128-10 online (31 us) and 64-32-10 in batches of 16 or more prefer the GPU.
    Provisional: the constants were set from arithmetic, not measured on a GPU.
    """
    cpu, gpu = step_seconds(sizes, batch_size)
    return cpu < gpu


class SlowOnGPUWarning(UserWarning):
    """A fit runs on the GPU where ``prefers_cpu`` says backend="loop" is faster."""


# -- switches (for comparisons and tests) ----------------------------------------------------

# Fused epoch: None picks it when fused_plan says it fits and pays, True whenever it fits,
# False never.
FUSED = None
# Fused epoch: keep the parameters in shared memory when they fit (False: always in global
# memory, as for networks too big for shared memory).
FUSED_PARAMS_IN_SHARED = True
# SlowOnGPUWarning once per fit where prefers_cpu says so: None on a real GPU only (the
# simulator's speed says nothing about a GPU's), True always, False never.
ROUTING_WARNINGS = None


def jit(*args, **kwargs):
    """cuda.jit, or a no-op without numba-cuda (the modules then only serve require())."""
    if cuda is None:
        return lambda f: f
    return cuda.jit(*args, **kwargs)


# Under NUMBA_ENABLE_CUDASIM=1 kernels are FakeCUDAKernel objects run in Python threads.
SIMULATOR = cuda is not None and type(jit(lambda: None)).__name__ == "FakeCUDAKernel"


def cdiv(a, b):
    """Ceiling division: blocks needed for a threads at b per block."""
    return -(-a // b)


_CONFIGS = {}


def launch(kernel, grid, block, shared_bytes=0):
    """kernel[grid, block, 0, shared_bytes], made once per configuration and kept: making
    one costs time, and numba-cuda warns on each made with fewer than 128 blocks, as most
    of ours are on purpose (small layers, one-block reductions, the fused epoch)."""
    if SIMULATOR:  # the simulator's kernel[...] configures the kernel object itself
        return kernel[grid, block, 0, shared_bytes]
    key = (kernel, grid, block, shared_bytes)
    config = _CONFIGS.get(key)
    if config is None:
        if len(_CONFIGS) > MAX_CONFIGS:
            _CONFIGS.clear()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Grid size .* under-utilization")
            config = _CONFIGS[key] = kernel[grid, block, 0, shared_bytes]
    return config


_CACHES = {}


def device_cache():
    """A dict for device arrays that live as long as the current CUDA context of this
    process: a fresh one after ``cuda.close()``, in another device's context, or in a
    forked child, where arrays made before would be stale (freed, on another device, or
    the parent's)."""
    ctx = cuda.current_context()
    key = (os.getpid(), getattr(ctx.device, "id", 0))  # one context per device and process
    # The simulator makes a new context object per call, over one fake device: key on the
    # process alone there.
    token = None if SIMULATOR else ctx
    entry = _CACHES.get(key)
    if entry is None or entry[0] is not token:  # none yet, or the device's context was reset
        for old in [k for k in _CACHES if k[0] != key[0]]:
            del _CACHES[old]  # a parent's, after a fork
        entry = _CACHES[key] = (token, {})
    return entry[1]
