"""Numba's on-disk cache, when it cannot be used as is (fastbp._numba_cache): no writable
cache folder, and corrupt cache entries. Each case runs in a fresh interpreter with its
own NUMBA_CACHE_DIR, HOME and TMPDIR, and compiles one small kernel,
loop_layers.weight_offset (about a second)."""
import os
import pathlib
import pickle
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
WARNING = "NumbaCacheWarning"

# Prints the kernel's result and how many times Numba's cache had it, 0 or 1.
KERNEL = """
import numpy as np
from fastbp.kernels import loop_layers
print(loop_layers.weight_offset(np.array([2, 3, 1]), 2),
      sum(loop_layers.weight_offset.stats.cache_hits.values()))
"""


def _run(tmp_path, code=KERNEL, pythonpath=ROOT, **env):
    """Runs ``code`` in a fresh interpreter; returns (stdout words, stderr)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("NUMBA_CACHE", "NUMBA_DISABLE_JIT", "PYTHON", "XDG_CACHE"))}
    base.update(PYTHONPATH=str(pythonpath), PYTHONDONTWRITEBYTECODE="1",
                HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"),
                NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    base.update({k: str(v) for k, v in env.items()})
    for folder in ("home", "tmp"):
        (tmp_path / folder).mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", code], env=base, cwd=tmp_path, check=False,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout.split(), proc.stderr


# -- no writable cache folder ----------------------------------------------------------------

def _unwritable(tmp_path, how):
    """A copy of fastbp whose kernels' __pycache__ cannot be made, and NUMBA_CACHE_DIR and
    HOME that cannot be written either: by chmod 0o555 (not for root, whom modes do not
    stop), or as paths under a regular file (for anyone)."""
    pkg = tmp_path / "pkg"
    shutil.copytree(ROOT / "fastbp", pkg / "fastbp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    kernels = pkg / "fastbp" / "kernels"
    if how == "read-only":
        for folder in (tmp_path / "ro", kernels):
            folder.mkdir(exist_ok=True)
            folder.chmod(0o555)
        blocked = tmp_path / "ro"
    else:
        (kernels / "__pycache__").write_text("a file, not a folder")
        blocked = tmp_path / "file"
        blocked.write_text("a file, not a folder")
    return dict(pythonpath=pkg, NUMBA_CACHE_DIR=blocked / "numba", HOME=blocked / "home")


@pytest.fixture
def restore_modes(tmp_path):
    yield
    for path in tmp_path.rglob("*"):  # so that pytest can remove tmp_path
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def _modes_stop_writes():
    """False where chmod 0o555 does not stop this process writing (root)."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o555)
        try:
            open(os.path.join(tmp, "probe"), "w").close()
        except OSError:
            return True
        finally:
            os.chmod(tmp, 0o755)
        return False


@pytest.mark.parametrize("how", [
    "under-a-file",
    pytest.param("read-only", marks=pytest.mark.skipif(
        not _modes_stop_writes(), reason="chmod 0o555 does not stop this user's writes")),
])
def test_no_writable_cache_folder_uses_a_private_one(tmp_path, how, restore_modes):
    env = _unwritable(tmp_path, how)
    out, err = _run(tmp_path, **env)
    assert out == ["9", "0"]
    assert err.count(WARNING) == 1, err  # one for all the kernels of loop_layers & co
    assert f"<string>:3: {WARNING}" in err, err  # at the import in the caller's code
    assert "NUMBA_CACHE_DIR" in err and "no locator" not in err
    private = tmp_path / "tmp" / f"fastbp-numba-cache-{os.geteuid()}"
    assert str(private) in err
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert list(private.rglob("loop_layers.weight_offset-*.nbi"))
    out, err = _run(tmp_path, **env)  # the next run loads the kernel from there
    assert out == ["9", "1"]
    assert err.count(WARNING) == 1, err


def test_a_private_folder_others_can_write_is_not_used(tmp_path):
    env = _unwritable(tmp_path, "under-a-file")
    planted = tmp_path / "tmp" / f"fastbp-numba-cache-{os.geteuid()}"
    planted.mkdir(parents=True)
    planted.chmod(0o777)
    out, err = _run(tmp_path, **env)
    assert out == ["9", "0"]
    assert err.count(WARNING) == 1 and "this process only" in err, err
    assert list(planted.iterdir()) == []
    # the folder of the process went with it
    assert [p.name for p in (tmp_path / "tmp").iterdir()] == [planted.name]


def test_no_temp_folder_either_compiles_without_a_cache(tmp_path):
    env = _unwritable(tmp_path, "under-a-file")
    code = (f"import tempfile; tempfile.tempdir = {str(tmp_path / 'file' / 'tmp')!r}\n"
            "from fastbp.kernels import loop  # the compile notice\n" + KERNEL)
    out, err = _run(tmp_path, code, **env)
    assert out == ["9", "0"]
    assert err.count(WARNING) == 1 and "without caching" in err, err
    assert "compiling kernels (every run: Numba's cache is not kept" in err, err
    assert not (tmp_path / "tmp").exists() or not list((tmp_path / "tmp").iterdir())


# -- corrupt entries -------------------------------------------------------------------------

POPULATE = KERNEL + "print(loop_layers.block_offset(np.array([2, 3, 1]), 2, 5))\n"


def _corrupt_index(path, kind):
    import numba
    data = path.read_bytes()
    if kind == "garbage":
        path.write_bytes(b"garbage\n" * 8)
    elif kind == "truncated":
        path.write_bytes(data[:len(data) // 2])
    else:  # the right version, then a pickle that is not (stamp, {key: file name})
        path.write_bytes(pickle.dumps(numba.__version__) + pickle.dumps(42))


def _corrupt_data(path, kind, other):
    data = path.read_bytes()
    if kind == "garbage":
        path.write_bytes(b"\x80\x05garbage" * 8)
    elif kind == "truncated":
        path.write_bytes(data[:len(data) // 2])
    else:  # another kernel's entry
        shutil.copyfile(other, path)


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A cache folder holding weight_offset and block_offset."""
    tmp = tmp_path_factory.mktemp("populated")
    out, err = _run(tmp, POPULATE)
    assert out == ["9", "0", "25"] and WARNING not in err, err
    return tmp / "numba"


@pytest.mark.parametrize("which, kind", [
    ("index", "garbage"), ("index", "truncated"), ("index", "wrong-contents"),
    ("data", "garbage"), ("data", "truncated"), ("data", "another-kernel"),
])
def test_a_corrupt_entry_is_compiled_again_and_rewritten(tmp_path, populated, which, kind):
    shutil.copytree(populated, tmp_path / "numba")
    index, = (tmp_path / "numba").rglob("loop_layers.weight_offset-*.nbi")
    data, = (tmp_path / "numba").rglob("loop_layers.weight_offset-*.nbc")
    other, = (tmp_path / "numba").rglob("loop_layers.block_offset-*.nbc")
    if which == "index":
        _corrupt_index(index, kind)
    else:
        _corrupt_data(data, kind, other)
    out, err = _run(tmp_path)
    assert out == ["9", "0"]  # a cache miss: compiled again
    assert err.count(WARNING) == 1 and "weight_offset" in err, err
    assert f"<string>:4: {WARNING}" in err, err  # at the caller's first call
    out, err = _run(tmp_path)  # the rewritten entry loads cleanly
    assert out == ["9", "1"]
    assert WARNING not in err, err


# -- the patch itself ------------------------------------------------------------------------

def test_the_patch_is_installed_once_and_only_serves_fastbp(tmp_path):
    code = """
import sys
import fastbp, fastbp.kernels
from fastbp import _numba_cache
assert 'numba' not in sys.modules  # import fastbp stays light
from numba.core import caching
_numba_cache.install(); _numba_cache.install()
fallback = [c for c in caching.CacheImpl._locator_classes
            if getattr(c, '_fastbp_fallback', False)]
assert len(fallback) == 1 and caching.CacheImpl._locator_classes[-1] is fallback[0]
assert sum(isinstance(f, _numba_cache._PatchOnImport) for f in sys.meta_path) == 1
assert not hasattr(caching.Cache.load_overload._fastbp_original, '_fastbp_original')
def f(): pass
assert fallback[0].from_function(f, sys.executable) is None
from fastbp.kernels import codes
from numba.cuda.core import caching as cuda_caching
assert any(getattr(c, '_fastbp_fallback', False)
           for c in cuda_caching.CacheImpl._locator_classes)
assert hasattr(cuda_caching.Cache.save_overload, '_fastbp_original')
print('ok')
"""
    out, err = _run(tmp_path, code)
    assert out == ["ok"], err
