"""Map a backend name to its kernel module. Importing fastbp never imports numba.cuda."""
import importlib

from fastbp._validate import choice

BACKENDS = ("loop", "vectorized", "cuda")


def get(name):
    """The kernel module for ``"loop"``, ``"vectorized"`` or ``"cuda"``.

    Raises ValueError for an unknown name and RuntimeError when CUDA is asked for
    but numba-cuda or a GPU (or the simulator) is missing.
    """
    choice("backend", name, BACKENDS)
    module = importlib.import_module(f"fastbp.kernels.{name}")
    if name == "cuda":
        module.require()
    return module
