"""Test setup that must happen before numba is imported.

- Without a GPU, CUDA kernels run under Numba's simulator (NUMBA_ENABLE_CUDASIM=1).
- Numba's on-disk cache does not notice edits in modules a kernel calls, so the cache
  directory is keyed on a hash of fastbp/kernels/*.py and fastbp/_config.py.
"""
import hashlib
import os
import pathlib
import shutil
import tempfile

import numpy as np
import pytest

_PKG = pathlib.Path(__file__).resolve().parents[1] / "fastbp"


def _has_gpu():
    return shutil.which("nvidia-smi") is not None or os.path.exists("/dev/nvidia0")


if not _has_gpu():
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

_digest = hashlib.sha256()
for path in sorted([*_PKG.glob("kernels/*.py"), _PKG / "_config.py"]):
    _digest.update(path.read_bytes())
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(
    tempfile.gettempdir(), f"fastbp-numba-cache-{_digest.hexdigest()[:16]}"))

@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)

