"""The threading layer of Numba's parallel kernels, chosen on purpose, and the guard that
makes fastbp's parallel calls safe from several Python threads (``parallel_guard``).

Kept apart from ``_config`` (the compilation flags), whose bytes key the tests' kernel
cache."""
import contextlib
import ctypes
import os
import sys
import threading


# -- the threading layer ----------------------------------------------------------------------
#
# Numba runs parallel kernels on one of three layers. fastbp prefers TBB: it is safe to
# call from several Python threads at once and to fork after (GNU OpenMP hangs a forked
# child that uses it; the workqueue layer aborts the process on concurrent use). The
# PyPI ``tbb`` wheel installs libtbb.so.12 into ``<prefix>/lib``, where the loader does
# not look, so it is preloaded here. NUMBA_THREADING_LAYER, when set, is respected.
# Under workqueue, parallel_guard() serializes fastbp's parallel calls.

_LAYER_LOCK = threading.RLock()
_SELECTED = None  # the layer select_threading_layer asked for, once it has run
_TBB_NAMES = ("libtbb.so.12", "libtbb.12.dylib", "tbb12.dll")


def _preload_tbb():
    """Load the tbb wheel's library so that Numba's TBB layer finds it; True on success."""
    for folder in {os.path.join(sys.prefix, "lib"), os.path.join(sys.prefix, "Library", "bin"),
                   os.path.join(sys.base_prefix, "lib")}:
        for name in _TBB_NAMES:
            path = os.path.join(folder, name)
            if os.path.exists(path):
                try:
                    ctypes.CDLL(path, mode=getattr(ctypes, "RTLD_GLOBAL", 0))
                    return True
                except OSError:
                    pass
    return False


def select_threading_layer():
    """Make Numba use TBB when it can be loaded (unless NUMBA_THREADING_LAYER says
    otherwise); return the layer asked for ("tbb", or Numba's choice as "default")."""
    import numba
    _preload_tbb()
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return numba.config.THREADING_LAYER
    try:
        from numba.np.ufunc import parallel, tbbpool  # noqa: F401  (ImportError without libtbb)
        parallel._check_tbb_version_compatible()
    except Exception:  # no TBB, or one Numba refuses: leave Numba's own choice
        return numba.config.THREADING_LAYER
    numba.config.THREADING_LAYER = "tbb"
    return "tbb"


def ensure_layer():
    """select_threading_layer, once per process. Call it before anything that makes Numba
    start its threads -- a parallel kernel, but also numba.get_num_threads() or
    numba.set_num_threads() -- or Numba settles on its default layer (OpenMP, if found)."""
    global _SELECTED
    if _SELECTED is None:
        with _LAYER_LOCK:
            if _SELECTED is None:
                _SELECTED = select_threading_layer()
    return _SELECTED


def parallel_guard():
    """Context manager around every call into compiled code that may run ``parallel=True``
    kernels: under Numba's workqueue layer (not thread-safe: two Python threads in it at
    once abort the process) a lock that lets one such call run at a time; under TBB and
    OpenMP (thread-safe) nothing. Before the first parallel call, when Numba has not chosen
    its layer yet, the lock is taken too. The first call selects the layer
    (select_threading_layer)."""
    ensure_layer()
    import numba
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel call yet: the layer is chosen by the first one
        return _LAYER_LOCK
    return _LAYER_LOCK if layer == "workqueue" else contextlib.nullcontext()
