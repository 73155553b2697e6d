"""Test setup that must happen before numba is imported.

- Without a GPU, CUDA kernels run under Numba's simulator (NUMBA_ENABLE_CUDASIM=1).
- Numba gets 4 threads whatever the number of cores (NUMBA_NUM_THREADS=4).
- Numba's on-disk cache does not notice edits in modules a kernel calls, so the cache
  directory is keyed on a hash of fastbp/kernels/*.py and fastbp/_config.py.
"""
import hashlib
import os
import pathlib
import shutil
import sys
import tempfile

import numpy as np
import pytest

_PKG = pathlib.Path(__file__).resolve().parents[1] / "fastbp"


def _has_gpu():
    return shutil.which("nvidia-smi") is not None or os.path.exists("/dev/nvidia0")


if not _has_gpu():
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

# More of Numba's threads than this machine may have cores, so that every test that runs
# threaded kernels can run them on 1..4 threads (tests/test_harness.py).
os.environ.setdefault("NUMBA_NUM_THREADS", "4")

_digest = hashlib.sha256()
for path in sorted([*_PKG.glob("kernels/*.py"), _PKG / "_config.py"]):
    _digest.update(path.read_bytes())
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(
    tempfile.gettempdir(), f"fastbp-numba-cache-{_digest.hexdigest()[:16]}"))


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


BACKENDS = ["loop", "vectorized", "cuda"]


@pytest.fixture
def small_cuda_blocks(monkeypatch):
    """Tiny thread blocks, so batches of 7 samples and layers of 5 units span several
    blocks; under the simulator also a short GIL switch interval, as it runs each thread as
    a Python thread (about 6x faster)."""
    from fastbp.kernels import cuda_config
    monkeypatch.setattr(cuda_config, "THREADS_PER_BLOCK", 4)
    monkeypatch.setattr(cuda_config, "TILE", 4)
    monkeypatch.setattr(cuda_config, "FUSED_THREADS", 8)
    interval = sys.getswitchinterval()
    if cuda_config.SIMULATOR:
        sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(interval)


def _backend(request):
    if request.param == "cuda":
        from fastbp.kernels import cuda_config
        if cuda_config.cuda is None:
            pytest.skip("numba-cuda is not installed")
        request.getfixturevalue("small_cuda_blocks")
    return request.param


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Every kernel backend by name: "loop", "vectorized", and "cuda" (on the simulator
    without a GPU, with tiny thread blocks; skipped where numba-cuda is not installed)."""
    return _backend(request)


@pytest.fixture(params=[b for b in BACKENDS if b != "vectorized"])
def compiled_backend(request):
    """The backends held kernel by kernel against the vectorized reference: as ``backend``,
    without the reference itself."""
    return _backend(request)


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler (KeyboardInterrupt) for a test that sends itself Ctrl-C:
    a pytest-xdist worker runs with SIGINT ignored, where fastbp rightly leaves it alone."""
    import signal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
