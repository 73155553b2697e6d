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
# min(32, threads) lanes) whose registers fit a block (check_tunables, with
# FUSED_REGISTERS). Untuned.
FUSED_THREADS = 256
# Dynamic shared memory the fused epoch may use: a block gets 48 KiB without opting in to
# more (cudaFuncSetAttribute); 4 KiB stay free for the runtime's own use.
FUSED_SHARED_BYTES = 44 * 1024
# Samples per piece of a batch in the fused epoch at most: bounds the per-sample cost
# array in shared memory and the serial cost sum of thread 0. Untuned.
FUSED_MAX_ROWS = 256
# batch_size * P above which the per-layer launches, which spread a batch over the whole
# GPU, beat the fused epoch's one block: where step_seconds's two branches meet. For L = 2,
# 2.4 us + 6 B P / FUSED_FLOPS = 180 us + 6 B P / GPU_FLOPS at B P = 237,000, about 2^18
# (deeper networks: later, as the launches grow with L). Derived from the constants
# below, so as provisional as they are.
FUSED_MAX_WORK = 1 << 18
# Per-layer path: a batch is worked through in pieces of at most WORK_ROWS samples, summing
# their gradients before the one update; bounds the workspaces to WORK_ROWS * sum(D)
# values while keeping every launch large enough to fill the GPU. At most 65,535: the
# sample is blockIdx.y of the gather. Untuned.
WORK_ROWS = 8192
# -- the sweep kernel (cuda_sweep.py: a block per model) --------------------------------------

# Threads per model's block: 4 warps. A model's work per batch is small (64-32-10 at batch
# 16: 16 x 32 forward outputs, 32 x 65 gradients), and the models resident per SM are
# bounded by shared memory (about 7 of 29 KiB each on an H100), so 4 warps a block keep
# about 28 warps per SM; networks with fewer tiles get fewer (cuda_sweep_plan._threads). A
# multiple of 32 or a power of two below it (check_tunables). Untuned.
SWEEP_THREADS = 128
# Output rows per thread in the sweep kernel's products (cuda_sweep_gemm._dot): each column
# value read from shared memory feeds this many multiply-adds. A power of two and a
# compile-time constant (a fresh process and cache to change it). 4 is the first size at
# which loads no longer outnumber multiply-adds (5 loads per 4), while 16 samples still
# make 4 row blocks. Untuned.
SWEEP_TILE_ROWS = 4
# Samples per piece of a batch in the sweep kernel at most (a larger batch sums its pieces'
# gradients in global memory): bounds a block's shared memory for full-batch sweeps so
# that several models stay resident per SM. Pieces also fit in 48 KiB beside nothing else
# (cuda_sweep_plan.PIECE_BYTES), on every device alike. Untuned.
SWEEP_MAX_ROWS = 64
# Shared memory per block the sweep kernel may use, in bytes: None for the device's
# opt-in maximum (227 KiB on an H100; the kernel opts in through the driver's attribute),
# 48 KiB where opting in fails and in the simulator. The parameters and the optimizer
# state live in shared memory when they fit in it. Untuned.
SWEEP_SHARED_BYTES = None
# Launch configurations kept (see ``launch``): each is a small object; the bound only keeps
# a long process with very many shapes from growing without end. Not performance-relevant.
MAX_CONFIGS = 4096

# -- routing: where a single small network trains faster (``prefers_cpu``) -------------------
# No GPU has measured these yet. Until benchmarks/device_check.py has run on one, they come
# from issue 20's offline review of the sm_90 code (ptxas, nvdisasm: instructions per FFMA,
# barrier-separated phases, latency chains) and from the CPU figures of
# benchmarks/RESULTS.md. Each says what it models and where its value comes from.

# One core of the loop backend at online / small batches, float32: measured 17.5 GFLOP/s
# (64-32-10 online) to 43 GFLOP/s (784-128-10 online) in benchmarks/RESULTS.md; the low end.
CPU_FLOPS = 20e9
# A syncthreads-separated phase of the fused epoch with little work in it (shared-memory
# latency, a barrier, loop set-up): issue 20 puts the fused online epoch at about 4 us per
# sample of 64-32-10 over about 10 such phases, 0.4 us each.
PHASE_SECONDS = 0.4e-6
# One launch of the per-layer path, issued from Python once per layer and batch: numba's
# host cost per launch with many array arguments, 15-40 us (issue 20), dwarfs the GPU's own
# 3-5 us; the low end. benchmarks/device_check.py step (c) measures it.
LAUNCH_SECONDS = 20e-6
# What the fused epoch's one block (one SM) computes: issue 20 estimates 784-128-10 online
# (610 kflop per sample; 14 us on one core at 43 GFLOP/s) 5-10x slower on the GPU than on
# one core, 70-140 us per sample, i.e. 4-9 GFLOP/s (22 and 18 SASS instructions per FFMA in
# the delta and gradient loops, serial latency chains); 64-32-10 online's 4 us per sample
# gives the same with the phases above. The middle, 8 GFLOP/s.
FUSED_FLOPS = 8e9
# What the per-layer path computes over the whole GPU on mid-sized layers: issue 20
# estimates the tiled kernels at a quarter of cuBLAS (2.9 SASS instructions per FFMA, 64
# registers) for 784-512-512-10 at batch 1024; a quarter of an H100's ~50 TFLOP/s FP32
# cuBLAS rate, rounded down. device_check.py step (d) measures it.
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
    whatever its size -- and one block of the fused epoch computes slower than a CPU core
    (FUSED_FLOPS < CPU_FLOPS), so a single network wins on the GPU only where a batch is
    large enough for the per-layer path, which spreads it over the whole GPU. With the
    constants above: 64-32-10 online (0.7 us of CPU arithmetic against 4.2 us), 784-128-10
    online (31 us against 78 us) and 64-32-10 in batches of 16 (12 us against 31 us) prefer
    the CPU; 64-32-10 in batches of 1024, 784-128-10 in batches of 64 and 784-512-512-10 in
    batches of 1024 prefer the GPU. Many models at once (fastbp.Sweep) are another matter:
    cuda.sweep_epoch runs a block per model.
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
# Sweep kernel: what lives in shared memory -- None: as much as fits ("all": parameters
# and optimizer state; "params"; "none"), or one of those names for every plan.
SWEEP_IN_SHARED = None
# SlowOnGPUWarning once per fit where prefers_cpu says so: None on a real GPU only (the
# simulator's speed says nothing about a GPU's), True always, False never.
ROUTING_WARNINGS = None


# -- checks of the tunables --------------------------------------------------------------------

# Registers per thread of the kernels at sm_90, the larger of float32 and float64, as
# ptxas (CUDA 12.9) reports them for tests/_cuda_codegen.py (float32 / float64 in
# brackets); tests/test_cuda_codegen.py fails when a kernel compiles to more, so these stay
# upper bounds. What check_tunables holds the block sizes against: with 161, a fused block
# holds at most 384 threads (FUSED_THREADS = 512 would fail to launch in float64).
FUSED_REGISTERS = 161   # fused_epoch (114 / 161)
SWEEP_REGISTERS = 128   # cuda_sweep.sweep_epoch_kernel (92 / 128)
LAYER_REGISTERS = 94    # _forward_layer, _delta_layer, _grad_layer (64 / 94, 80, 80)
# Per block on every GPU since sm_50 (sm_90 included): registers, threads, and the shared
# memory a block gets without opting in.
BLOCK_REGISTERS = 65536
BLOCK_THREADS = 1024
BLOCK_SHARED_BYTES = 48 * 1024


def block_registers(threads, registers):
    """Registers a block of ``threads`` threads at ``registers`` each occupies: allocated
    per warp, in units of 256."""
    return cdiv(registers * 32, 256) * 256 * cdiv(threads, 32)


def _block_size_problem(name, threads, registers):
    if not isinstance(threads, int) or threads < 1:
        return f"{name} = {threads!r}: a positive number of threads is needed"
    if threads % 32 and threads & (threads - 1):
        return (f"{name} = {threads}: a multiple of 32 (whole warps) or a power of two "
                f"below 32 is needed (the warp-level loops span min(32, threads) lanes)")
    if threads > BLOCK_THREADS:
        return f"{name} = {threads}: a block holds at most {BLOCK_THREADS} threads"
    need = block_registers(threads, registers)
    if need > BLOCK_REGISTERS:
        fits = BLOCK_REGISTERS // block_registers(32, registers) * 32
        return (f"{name} = {threads}: {threads} threads x {registers} registers (the kernel's, "
                f"at sm_90) need {need} registers, more than a block's {BLOCK_REGISTERS}, so "
                f"the launch would fail; use at most {fits}")
    return None


_CHECKED = set()


def check_tunables():
    """Raise ValueError, naming the tunable, where a block size or tile would fail to launch
    or to compile: FUSED_THREADS and SWEEP_THREADS (whole warps whose registers fit a block),
    TILE (TILE * TILE threads, two tiles within 48 KiB, registers), THREADS_PER_BLOCK,
    FUSED_SHARED_BYTES (no opt-in for the fused epoch) and SWEEP_TILE_ROWS (a power of two).
    Runs at import, and again when a plan is made with other values (tests and benchmarks
    change the tunables); each set of values is checked once."""
    values = (FUSED_THREADS, SWEEP_THREADS, TILE, THREADS_PER_BLOCK, REGISTER_BLOCK,
              FUSED_SHARED_BYTES, SWEEP_TILE_ROWS, SWEEP_MAX_ROWS)
    if values in _CHECKED:
        return
    problems = [p for p in (
        _block_size_problem("cuda_config.FUSED_THREADS", FUSED_THREADS, FUSED_REGISTERS),
        _block_size_problem("cuda_config.SWEEP_THREADS", SWEEP_THREADS, SWEEP_REGISTERS),
        _block_size_problem("cuda_config.THREADS_PER_BLOCK", THREADS_PER_BLOCK, 32),
    ) if p]
    if not isinstance(TILE, int) or TILE < 1:
        problems.append(f"cuda_config.TILE = {TILE!r}: a positive tile side is needed")
    elif TILE * TILE > BLOCK_THREADS:
        problems.append(f"cuda_config.TILE = {TILE}: blocks of TILE x TILE = {TILE * TILE} "
                        f"threads, more than a block's {BLOCK_THREADS}; use at most 32")
    else:
        tile_bytes = 2 * TILE * (TILE * REGISTER_BLOCK + 1) * 8  # two slices, float64
        if tile_bytes > BLOCK_SHARED_BYTES:
            problems.append(f"cuda_config.TILE = {TILE}: two float64 tiles of TILE x (TILE x "
                            f"{REGISTER_BLOCK} + 1) take {tile_bytes} bytes of shared memory, "
                            f"more than the {BLOCK_SHARED_BYTES} a block gets")
        need = block_registers(TILE * TILE, LAYER_REGISTERS)
        if need > BLOCK_REGISTERS:
            problems.append(f"cuda_config.TILE = {TILE}: {TILE * TILE} threads x "
                            f"{LAYER_REGISTERS} registers need {need}, more than a block's "
                            f"{BLOCK_REGISTERS}")
    if not 0 < FUSED_SHARED_BYTES <= BLOCK_SHARED_BYTES:
        problems.append(f"cuda_config.FUSED_SHARED_BYTES = {FUSED_SHARED_BYTES}: the fused "
                        f"epoch does not opt in to more than {BLOCK_SHARED_BYTES} bytes")
    if SWEEP_TILE_ROWS < 1 or SWEEP_TILE_ROWS & (SWEEP_TILE_ROWS - 1):
        problems.append(f"cuda_config.SWEEP_TILE_ROWS = {SWEEP_TILE_ROWS}: a power of two "
                        "is needed")
    if not isinstance(SWEEP_MAX_ROWS, int) or SWEEP_MAX_ROWS < 1:
        problems.append(f"cuda_config.SWEEP_MAX_ROWS = {SWEEP_MAX_ROWS!r}: at least 1")
    if problems:
        raise ValueError("; ".join(problems))
    _CHECKED.add(values)


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


check_tunables()
