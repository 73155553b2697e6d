"""Map a backend name to its kernel module, and ``backend="auto"`` to one of them.
Importing fastbp never imports numba.cuda (``pick`` does, for "auto" only)."""
import importlib

from fastbp._validate import choice

BACKENDS = ("loop", "vectorized", "cuda")
# What a fit may ask for: a backend, or "auto" (``pick``).
CHOICES = BACKENDS + ("auto",)


def get(name):
    """The kernel module for ``"loop"``, ``"vectorized"`` or ``"cuda"``.

    Raises ValueError for an unknown name and RuntimeError when CUDA is asked for
    but numba-cuda or a GPU (or the simulator) is missing. ``"auto"`` is not a module:
    ``pick`` turns it into one of the names for a given network and batch size.
    """
    choice("backend", name, BACKENDS)
    module = importlib.import_module(f"fastbp.kernels.{name}")
    if name == "cuda":
        module.require()
    return module


def pick(name, sizes, batch_size):
    """(backend, reason): the backend a fit of a network of layer sizes ``sizes`` with
    batches of ``batch_size`` samples runs on, and one line saying why (for ``repr`` and
    verbose output).

    A name other than "auto" is kept as it is. "auto" is "cuda" only where a GPU is there
    and the cost model (``fastbp.kernels.cuda_config.prefers_cpu``: the GPU's launches or
    barrier phases per step against the step's arithmetic on one CPU core) predicts the GPU
    is faster; else "loop". The CUDA simulator is never picked: it runs kernels in Python
    threads. One network at a time: a Sweep trains many models per launch, which this does
    not weigh.
    """
    choice("backend", name, CHOICES)
    if name != "auto":
        return name, f"backend={name!r} as asked"
    from fastbp.kernels import cuda_config as config
    if config.cuda is None:
        return "loop", f"auto: loop, numba-cuda is not installed ({config.IMPORT_ERROR})"
    if config.SIMULATOR:
        return "loop", "auto: loop, the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) is no GPU"
    try:
        available = config.cuda.is_available()
    except Exception:  # a broken driver counts as none
        available = False
    if not available:
        return "loop", "auto: loop, no usable CUDA GPU found"
    batch_size = int(batch_size)
    cpu, gpu = config.step_seconds(sizes, batch_size)
    shape = "-".join(str(int(d)) for d in sizes)
    where = "loop" if config.prefers_cpu(sizes, batch_size) else "cuda"
    faster = "the CPU" if where == "loop" else "the GPU"
    return where, (f"auto: {where}, {shape} in batches of {batch_size} is predicted faster on "
                   f"{faster} (a step: {_time(cpu)} of arithmetic on one CPU core against "
                   f"{_time(gpu)} on the GPU; cuda_config.prefers_cpu)")


def _time(seconds):
    """A duration as people read it: 31 us, 1.2 ms, 0.35 s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2g} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2g} ms"
    return f"{seconds:.2g} s"
