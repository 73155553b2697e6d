"""The CUDA kernels compile to lean code: every kernel compiled offline for sm_90 in float32
and float64 (tests/_cuda_codegen.py, in a process without the simulator; NVVM from the
nvidia-cuda-nvcc wheel, no GPU needed) has no local memory and no register spills, the hot
kernels no 64-bit division or remainder and no generic (neither shared nor global) float
accesses, every kernel's registers allow the block size it is launched with and stay within
the figures cuda_config.check_tunables relies on, and the sweep kernel's shared memory fits
its launches (its plans made in this process: the simulator's, or a GPU's). Skipped, with
the reason, only where NVVM is not installed."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from fastbp.kernels import cuda_config

HERE = pathlib.Path(__file__).resolve().parent
REGISTERS_PER_BLOCK = 65536  # sm_90 (and every GPU since sm_50)
MAX_REGISTERS_PER_THREAD = 255
SM90_SHARED_OPT_IN = 232448  # bytes of shared memory a block may opt in to on an H100


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
    if name == "sweep_epoch_kernel":
        return cuda_config.SWEEP_THREADS
    return cuda_config.THREADS_PER_BLOCK


def test_every_kernel_is_compiled(report):
    assert report["uncovered"] == [], "kernels missing from tests/_cuda_codegen.py"


def test_no_local_memory_and_no_spills(report):
    for name, k in report["kernels"].items():
        assert not k["local"] and not k["local64"], f"{name}: local memory in the PTX"
        if report["ptxas"]:
            assert k["spill_bytes"] == 0 and k["stack_bytes"] == 0, f"{name}: {k}"
            assert k["spill_bytes64"] == 0 and k["stack_bytes64"] == 0, f"{name} (float64): {k}"


def test_hot_kernels_have_no_64_bit_division(report):
    for name, k in report["kernels"].items():
        if k["hot"]:
            assert k["div_s64"] == 0, f"{name}: {k['div_s64']} div.s64/rem.s64 in the PTX"
            assert k["div_u64"] == 0, f"{name}: {k['div_u64']} div.u64/rem.u64 in the PTX"


def test_hot_kernels_access_floats_as_shared_or_global(report):
    """Each float load or store of a hot kernel is ld/st.shared or ld/st.global: shared
    memory reached through a pointer that may also be global compiles to generic accesses
    (ld.f32), which resolve their address space on every access."""
    for name, k in report["kernels"].items():
        if k["hot"]:
            assert k["generic"] == 0, f"{name}: {k['generic']} generic float accesses"
    assert report["kernels"]["fused_epoch"]["shared_ld"] > 0
    assert report["kernels"]["sweep_epoch_kernel"]["shared_ld"] > 0


def test_registers_allow_the_launched_block_sizes(report):
    if not report["ptxas"]:
        pytest.skip("ptxas (nvidia-cuda-nvcc-cu12) is not installed")
    for name, k in report["kernels"].items():
        threads = _threads(name)
        for regs in (k["registers"], k["registers64"]):
            assert regs is not None and regs <= MAX_REGISTERS_PER_THREAD, f"{name}: {k}"
            # allocated per warp in units of 256: cuda_config.block_registers
            assert cuda_config.block_registers(threads, regs) <= REGISTERS_PER_BLOCK, (
                f"{name}: {regs} registers x {threads} threads exceed a block's "
                f"{REGISTERS_PER_BLOCK}")


def test_tunable_checks_rely_on_true_register_figures(report):
    """cuda_config.check_tunables judges FUSED_THREADS, SWEEP_THREADS and TILE by the
    registers in cuda_config; they must not be below what the kernels compile to."""
    if not report["ptxas"]:
        pytest.skip("ptxas (nvidia-cuda-nvcc-cu12) is not installed")
    bounds = {"fused_epoch": cuda_config.FUSED_REGISTERS,
              "sweep_epoch_kernel": cuda_config.SWEEP_REGISTERS,
              "_forward_layer": cuda_config.LAYER_REGISTERS,
              "_delta_layer": cuda_config.LAYER_REGISTERS,
              "_grad_layer": cuda_config.LAYER_REGISTERS}
    for name, bound in bounds.items():
        k = report["kernels"][name]
        assert max(k["registers"], k["registers64"]) <= bound, (
            f"{name} compiles to {k['registers']} / {k['registers64']} registers (float32 / "
            f"float64); raise its figure in cuda_config to at least that")


@pytest.mark.parametrize("sizes,batch_size,optimizer", [
    ([64, 32, 10], 16, "sgd"), ([64, 32, 10], 16, "adam"), ([64, 32, 10], 1, "rprop"),
    ([64, 32, 10], 60000, "sgd"), ([784, 128, 10], 64, "adam"), ([784, 512, 512, 10], 1, "sgd"),
    ([3, 5, 4, 2], 7, "adam")])
def test_sweep_kernel_launches_fit_a_block(report, sizes, batch_size, optimizer):
    """The sweep kernel's plan for a network (in the simulator here; the plan is
    arithmetic) fits an H100 block: its dynamic shared memory beside the kernel's static
    shared memory within the opt-in maximum, the pieces within the 48 KiB every device
    gives, and its threads' registers within a block's."""
    import fastbp
    from fastbp.kernels import codes, cuda as ck, cuda_sweep
    net = fastbp.Network(sizes, dtype="float32")
    k = report["kernels"]["sweep_epoch_kernel"]
    n_state = {"sgd": 1, "adam": 2, "rprop": 2}[optimizer]
    for budget in (SM90_SHARED_OPT_IN, cuda_config.BLOCK_SHARED_BYTES):
        plan = cuda_sweep.plan_for(ck._net(net.sizes, net.act_codes), batch_size, np.float32,
                                   n_state, codes.CROSS_ENTROPY, codes.OPTIMIZERS[optimizer],
                                   True, budget)
        assert plan is not None
        assert plan.nbytes + (k.get("static_shared") or 0) <= budget, (sizes, budget, plan)
        assert plan.rows >= 1 and plan.rows <= min(batch_size, cuda_config.SWEEP_MAX_ROWS)
        if report["ptxas"]:
            for regs in (k["registers"], k["registers64"]):
                assert cuda_config.block_registers(plan.threads, regs) <= REGISTERS_PER_BLOCK
