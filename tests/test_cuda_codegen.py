"""The CUDA kernels compile to lean code: every kernel compiled offline for sm_90 in float32
(tests/_cuda_codegen.py, in a process without the simulator; NVVM from the nvidia-cuda-nvcc
wheel, no GPU needed) has no local memory and no register spills, the hot kernels no 64-bit
division or remainder, and every kernel's registers allow the block size it is launched
with. Skipped, with the reason, only where NVVM is not installed."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from fastbp.kernels import cuda_config

HERE = pathlib.Path(__file__).resolve().parent
REGISTERS_PER_BLOCK = 65536  # sm_90 (and every GPU since sm_50)
MAX_REGISTERS_PER_THREAD = 255


@pytest.fixture(scope="module")
def report():
    if cuda_config.cuda is None:
        pytest.skip("numba-cuda is not installed")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, str(HERE / "_cuda_codegen.py")], env=env,
                         cwd=HERE.parent, capture_output=True, text=True, timeout=600)
    if out.returncode == 3:
        pytest.skip(out.stdout.strip() or "NVVM is not available")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _threads(name):
    """Threads per block the backend launches the kernel with (default tunables)."""
    if name in ("_forward_layer", "_delta_layer", "_grad_layer"):
        return cuda_config.TILE * cuda_config.TILE
    if name == "fused_epoch":
        return cuda_config.FUSED_THREADS
    return cuda_config.THREADS_PER_BLOCK


def test_every_kernel_is_compiled(report):
    assert report["uncovered"] == [], "kernels missing from tests/_cuda_codegen.py"


def test_no_local_memory_and_no_spills(report):
    for name, k in report["kernels"].items():
        assert not k["local"], f"{name}: local memory in the PTX"
        if report["ptxas"]:
            assert k["spill_bytes"] == 0 and k["stack_bytes"] == 0, f"{name}: {k}"


def test_hot_kernels_have_no_64_bit_division(report):
    for name, k in report["kernels"].items():
        if k["hot"]:
            assert k["div_s64"] == 0, f"{name}: {k['div_s64']} div.s64/rem.s64 in the PTX"
            assert k["div_u64"] == 0, f"{name}: {k['div_u64']} div.u64/rem.u64 in the PTX"


def test_registers_allow_the_launched_block_sizes(report):
    if not report["ptxas"]:
        pytest.skip("ptxas (nvidia-cuda-nvcc-cu12) is not installed")
    for name, k in report["kernels"].items():
        regs, threads = k["registers"], _threads(name)
        assert regs is not None and regs <= MAX_REGISTERS_PER_THREAD, f"{name}: {k}"
        # registers are allocated per warp in units of 256: round up as the hardware does
        per_warp = -(-regs * 32 // 256) * 256
        assert per_warp * -(-threads // 32) <= REGISTERS_PER_BLOCK, (
            f"{name}: {regs} registers x {threads} threads exceed a block's {REGISTERS_PER_BLOCK}")
