"""The numba.cuda import guard, kernel decorators, launch configurations, and every GPU
tunable of the cuda backend, each with its reason.

The kernels read the tunables from this module when they launch, so tests (and
benchmarks) can change them: the simulator tests shrink the blocks so that several run.
"""
import importlib.util
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
# loading one element of each TILE x (TILE + 1) shared-memory tile (at most 32: 1024
# threads per block). Untuned.
TILE = 16
# Threads of the fused epoch's single block: 8 warps. Above 512 the block would not launch
# at the kernel's register count (65,536 registers per block). Untuned.
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
# values while keeping every launch large enough to fill the GPU. Untuned.
WORK_ROWS = 8192
# Launch configurations kept (see ``launch``): each is a small object; the bound only keeps
# a long process with very many shapes from growing without end. Not performance-relevant.
MAX_CONFIGS = 4096

# -- switches (for comparisons and tests) ----------------------------------------------------

# Fused epoch: None picks it when fused_plan says it fits and pays, True whenever it fits,
# False never.
FUSED = None
# Fused epoch: keep the parameters in shared memory when they fit (False: always in global
# memory, as for networks too big for shared memory).
FUSED_PARAMS_IN_SHARED = True


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
