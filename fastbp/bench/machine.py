"""The machine a benchmark runs on: the CPU and its vector ISA, the code Numba generates
for it (target, features, vector width), and the versions of Python, fastbp and its
rivals; ``machine_info`` puts them in the lines ``fastbp bench`` prints first.

``python -m fastbp.bench.machine --avx2-features | --zmm-features`` prints values for
``NUMBA_CPU_FEATURES`` that make Numba emit AVX2 or 512-bit code on this machine
(``python -m fastbp.bench.suites`` takes the same flags).
"""
import os
import pathlib
import platform
import time

import numpy as np


def _cpuinfo():
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), set()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), platform.machine())
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines()
                  if line.startswith("flags")), set())
    return model, flags


def _width(features):
    """The widest x86 vector ISA in a set of feature names (cpuinfo flags or LLVM's)."""
    if "avx512f" in features:
        return "AVX-512"
    if "avx2" in features:
        return "AVX2"
    return "SSE or other"


def _dot(a, b):
    s = a[0] - a[0]
    for i in range(a.size):
        s += a[i] * b[i]
    return s


def vector_bits():
    """Width in bits of the vectors Numba's code uses here: a float32 dot product loop is
    compiled (not cached) and its assembly read. On AVX-512 machines LLVM often prefers
    256-bit vectors (its ``prefer-256-bit`` tuning, e.g. for Skylake-X to Rocket Lake), so
    the ISA alone does not say the width."""
    import re

    import numba

    from fastbp import _config
    # The kernels' flags, but compiled afresh: code loaded from Numba's cache has no
    # assembly to read.
    JIT = dict(_config.JIT, cache=False)
    dot = numba.njit(**JIT)(_dot)
    a = np.ones(64, np.float32)
    dot(a, a)
    asm = dot.inspect_asm(dot.signatures[0])
    for bits, register in ((512, "zmm"), (256, "ymm"), (128, "xmm")):
        if re.search(register + r"\d", asm):
            return bits
    return 0


def numba_target():
    """(cpu name, vector ISA, where they come from) of the code Numba generates."""
    import llvmlite.binding as ll
    import numba
    name = numba.config.CPU_NAME or ll.get_host_cpu_name()
    if numba.config.CPU_FEATURES is not None:
        flat, source = numba.config.CPU_FEATURES, "NUMBA_CPU_FEATURES"
    else:
        flat, source = ll.get_host_cpu_features().flatten(), "host features"
    enabled = {f[1:] for f in flat.split(",") if f.startswith("+")}
    if numba.config.CPU_NAME:
        source = f"NUMBA_CPU_NAME, {source}"
    return name, _width(enabled), source


def avx2_features():
    """The host's LLVM feature string with every AVX-512 (and AVX10, AMX) feature turned
    off: ``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=<this>`` makes Numba emit AVX2 code
    on an AVX-512 machine."""
    import llvmlite.binding as ll
    out = []
    for f in ll.get_host_cpu_features().flatten().split(","):
        if f[1:].startswith(("avx512", "avx10", "amx", "evex512")):
            f = "-" + f[1:]
        out.append(f)
    return ",".join(out)


def zmm_features():
    """The host's LLVM feature string plus ``-prefer-256-bit``: with
    ``NUMBA_CPU_FEATURES=<this>`` an AVX-512 machine whose LLVM tuning prefers 256-bit
    vectors gets 512-bit (zmm) ones."""
    import llvmlite.binding as ll
    return ll.get_host_cpu_features().flatten() + ",-prefer-256-bit"


def _version(distribution):
    """An installed distribution's version (without importing it), or None."""
    from importlib import metadata
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _fann_version():
    try:
        from fastbp.bench import fann
        fann.load()
    except ImportError:
        return None
    import subprocess
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libfann2"],
                             capture_output=True, text=True, timeout=10)
        return f"2.2 (libfann2 {out.stdout.strip()})" if out.returncode == 0 else "2.2"
    except (OSError, subprocess.SubprocessError):
        return "2.2"


def machine_info(threads, dtype="float32"):
    """Lines describing the machine, the code Numba generates, threads and versions."""
    import numba
    model, flags = _cpuinfo()
    name, width, source = numba_target()
    versions = [f"Python {platform.python_version()}"] + [
        f"{label} {v}" for label, v in (
            ("fastbp", _version("fastbp")), ("numpy", np.__version__),
            ("numba", numba.__version__), ("FANN", _fann_version()),
            ("torch", _version("torch")), ("scikit-learn", _version("scikit-learn"))) if v]
    return [f"CPU: {model}, {os.cpu_count()} logical CPUs, {_width(flags)} "
            f"(/proc/cpuinfo flags); Numba code: {name}, {width} ({source}), "
            f"{vector_bits()}-bit vectors",
            f"threads {threads}; dtype {dtype}; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            ", ".join(versions)]


def main(argv, prog="python -m fastbp.bench.machine"):
    """``--avx2-features`` or ``--zmm-features``: print that value for NUMBA_CPU_FEATURES;
    anything else: print the usage. Returns 0."""
    if argv == ["--avx2-features"]:
        print(avx2_features())
    elif argv == ["--zmm-features"]:
        print(zmm_features())
    else:
        print(f"usage: {prog} --avx2-features | --zmm-features\n"
              "(values for NUMBA_CPU_FEATURES; the suites run as fastbp bench --suite)")
    return 0


if __name__ == "__main__":
    import sys
    raise SystemExit(main(sys.argv[1:]))
