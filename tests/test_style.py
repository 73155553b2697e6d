"""House rules that a reader should not have to check by hand: Numba flags come from one
place, only the cuda modules import numba.cuda, and `import fastbp` stays light."""
import ast
import pathlib
import subprocess
import sys

PKG = pathlib.Path(__file__).resolve().parents[1] / "fastbp"
SOURCES = sorted(PKG.rglob("*.py"))


def _calls(tree, name):
    """Calls of ``name(...)`` or ``x.name(...)``, as decorators or anywhere else."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == name) or (
                    isinstance(f, ast.Attribute) and f.attr == name):
                yield node


def test_every_njit_takes_the_flags_from_config():
    found = 0
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for name in ("njit", "jit"):
            for call in _calls(tree, name):
                if name == "jit" and path.name.startswith("cuda"):
                    continue  # numba.cuda.jit: the GPU kernels' own options
                found += 1
                flags = [kw for kw in call.keywords if kw.arg is None]
                assert flags and isinstance(flags[0].value, ast.Name) and (
                    flags[0].value.id in ("JIT", "JIT_NO_NRT")), (
                    f"{path.relative_to(PKG.parent)}:{call.lineno}: {name}(...) without **JIT "
                    "(or **JIT_NO_NRT) from fastbp._config")
        for node in ast.walk(tree):  # a bare @njit decorator takes no flags at all
            if isinstance(node, ast.FunctionDef):
                for dec in node.decorator_list:
                    assert not (isinstance(dec, ast.Name) and dec.id == "njit"), (
                        f"{path.relative_to(PKG.parent)}:{node.lineno}: bare @njit")
    assert found > 10


def test_only_the_cuda_modules_import_numba_cuda():
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names]
            if any(n.startswith("numba.cuda") or n.startswith("numba_cuda") for n in names):
                assert path.parent.name == "kernels" and path.name.startswith("cuda"), (
                    f"{path.relative_to(PKG.parent)}:{node.lineno} imports numba.cuda")


def test_import_fastbp_loads_no_benchmark_rival_or_gpu_module():
    code = ("import sys, fastbp\n"
            "print(sorted(m for m in sys.modules if 'fann' in m or 'bench' in m\n"
            "             or m.startswith('numba.cuda') or m == 'torch' or m == 'sklearn'))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == "[]", out
