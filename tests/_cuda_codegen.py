"""Compile every CUDA kernel of fastbp for sm_90 offline, in float32 and float64, and report
its PTX and ptxas figures as JSON on stdout (run by tests/test_cuda_codegen.py in a process
without NUMBA_ENABLE_CUDASIM; needs NVVM, not a GPU): local memory, 64-bit divisions and
generic float accesses in the PTX; registers, spills, stack and static shared memory.

Exit status 3 with a reason on stdout where NVVM is not installed or cannot compile.
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import types as pytypes

CC = (9, 0)


def _kernels(real="float32"):
    """(hot, cold): name -> (kernel, signature) with the working dtype ``real``."""
    from numba.cuda import types as nt
    from fastbp.kernels import cuda_fused as cf
    from fastbp.kernels import cuda_layers as cl
    from fastbp.kernels import cuda_sweep as cs
    f32, f64, i64, b1 = getattr(nt, real), nt.float64, nt.int64, nt.boolean
    V, M, I, F = f32[::1], f32[:, ::1], i64[::1], f64[::1]
    Vs = V  # a row of the C-contiguous (2, P) state array: typed C-contiguous at launch
    L8 = L2 = I2 = i64[:, ::1]
    hot = {
        "_forward_layer": (cl._forward_layer, (V, V, i64, i64, i64, i64, i64, i64, i64)),
        "_delta_layer": (cl._delta_layer, (V, V, V, i64, i64, i64, i64, i64, i64, i64)),
        "_grad_layer": (cl._grad_layer, (V, V, V, i64, i64, i64, i64, i64, i64, i64, i64, b1)),
        "_sum_parts": (cl._sum_parts, (V, V, L2, I, b1)),
        "_update_params": (cl._update_params, (V, f32[:, ::1], V, V, L2, I, V, i64, i64, f32,
                                               f32, b1) + (f32,) * 12 + (b1, F)),
        "_gather_rows": (cl._gather_rows, (V, M, V, M, M, V, I, i64, i64, i64, i64)),
        "fused_epoch": (cf.fused_epoch, (V, Vs, Vs, V, M, M, V, I, V, i64, L8, i64, b1, i64,
                                         i64, i64, i64, i64, i64, i64, F, i64, b1, F)),
        "sweep_epoch_kernel": (cs.sweep_epoch_kernel, (M, f32[:, :, ::1], M, M, M, V, I2,
                                                       b1[::1], f64[:, ::1], I2, f64[:, ::1],
                                                       I2, I)),
    }
    cold = {
        "_cost_delta_rows": (cl._cost_delta_rows, (F, V, V, M, V, i64, i64, i64, i64, b1, i64)),
        "_softmax_rows": (cl._softmax_rows, (V, i64, i64, i64)),
        "_cost_rows": (cl._cost_rows, (F, V, M, i64, i64, i64, b1, i64)),
        "_output_delta_rows": (cl._output_delta_rows, (V, V, M, V, i64, i64, i64, i64, i64)),
        "_sum_costs": (cl._sum_costs, (F, F, F, V, i64, i64, b1, b1)),
    }
    return hot, cold


def _uncovered(listed):
    """Kernels (not device functions) of the fastbp.kernels.cuda* modules missing here."""
    import importlib
    import pkgutil
    import fastbp.kernels
    from numba.cuda.dispatcher import CUDADispatcher
    missing = []
    for info in pkgutil.iter_modules(fastbp.kernels.__path__):
        if not info.name.startswith("cuda"):
            continue
        module = importlib.import_module(f"fastbp.kernels.{info.name}")
        for name, obj in vars(module).items():
            if (isinstance(obj, CUDADispatcher) and not obj.targetoptions.get("device")
                    and obj.__module__ == module.__name__ and name not in listed):
                missing.append(f"{info.name}.{name}")
    return missing


def _generic_accesses(ptx):
    """Loads and stores of floats through generic addresses (ld.f32, st.f64, ...): what an
    access compiles to where NVVM cannot tell shared from global memory."""
    return len(re.findall(r"\b(?:ld|st)\.f(?:32|64)\b", ptx))


def _ptxas():
    import nvidia.cuda_nvcc as nvcc  # the nvidia-cuda-nvcc-cu12 wheel
    found = glob.glob(os.path.join(list(nvcc.__path__)[0], "bin", "ptxas*"))
    return found[0] if found else None


def _ptxas_figures(ptxas, ptx):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        out = subprocess.run([ptxas, f"-arch=sm_{CC[0]}{CC[1]}", "-v", path, "-o",
                              os.path.join(tmp, "k.cubin")], capture_output=True, text=True)
    text = out.stdout + out.stderr
    regs = [int(r) for r in re.findall(r"Used (\d+) registers", text)]
    smem = [int(b) for b in re.findall(r"(\d+) bytes smem", text)]
    spills = [int(a) + int(b) for a, b in
              re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)]
    stack = [int(s) for s in re.findall(r"(\d+) bytes stack frame", text)]
    return dict(registers=max(regs, default=None), spill_bytes=max(spills, default=None),
                stack_bytes=max(stack, default=None), static_shared=max(smem, default=0),
                ptxas_rc=out.returncode)


def main():
    import numba.cuda.dispatcher as dispatcher
    # Device functions are compiled for the current device's capability, which needs a
    # driver; offline, say sm_90.
    dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=CC)
    from numba import cuda
    try:
        hot, cold = _kernels()
    except Exception as exc:  # pragma: no cover - environment
        print(f"cannot import the kernels: {exc!r}")
        sys.exit(3)
    try:
        ptxas = _ptxas()
    except ImportError:
        ptxas = None
    report = {"ptxas": bool(ptxas), "kernels": {}, "uncovered": _uncovered({**hot, **cold})}
    for group, kernels in (("hot", hot), ("cold", cold)):
        for name, (kernel, sig) in kernels.items():
            try:
                ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=CC)
            except Exception as exc:
                if "NVVM" in repr(exc) or "libnvvm" in repr(exc).lower():
                    print(f"NVVM is not available: {exc!r}")
                    sys.exit(3)
                raise
            entry = dict(hot=group == "hot", local=".local" in ptx,
                         div_s64=len(re.findall(r"\b(?:div|rem)\.s64\b", ptx)),
                         div_u64=len(re.findall(r"\b(?:div|rem)\.u64\b", ptx)),
                         generic=_generic_accesses(ptx), shared_ld=ptx.count("ld.shared.f32"),
                         lines=ptx.count("\n"))
            if ptxas:
                entry.update(_ptxas_figures(ptxas, ptx))
            report["kernels"][name] = entry
    # The tests on a GPU run float64 too: every kernel must compile in it; its registers
    # are kept (cuda_config's *_REGISTERS bound both dtypes), and its spills checked.
    hot64, cold64 = _kernels("float64")
    for name, (kernel, sig) in {**hot64, **cold64}.items():
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=CC)
        entry = report["kernels"][name]
        entry["local64"] = ".local" in ptx
        if ptxas:
            figures = _ptxas_figures(ptxas, ptx)
            entry.update(registers64=figures["registers"], spill_bytes64=figures["spill_bytes"],
                         stack_bytes64=figures["stack_bytes"])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
