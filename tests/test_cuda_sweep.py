"""cuda.sweep_epoch: K models of one structure per launch, a thread block per model
(fastbp/kernels/cuda_sweep.py), held to the loop backend and to itself.

- Model k of a K-model launch equals its own K = 1 launch bit for bit, wherever its
  parameters live (shared or global memory) and with batches in pieces.
- Every model within the dtype's tolerance of the loop backend's sweep_epoch on the same
  arrays (float32; in float64 loop.train_epoch row by row, which loop.sweep_epoch equals bit
  for bit, tests/test_sweep.py -- so no parallel float64 sweep kernel is compiled here),
  for SGD with momentum / Nesterov, Adam and RPROP, online, mini-batch and full batch,
  per-sample weights, several warps per block.
- Inactive models untouched; a diverged model flagged in stats as loop flags it.
- benchmarks/device_check.py --quick runs and writes its JSON.

Runs on the CUDA simulator without a GPU (tests/conftest.py), with blocks of 8 threads:
small shapes, few models, so that the whole file takes seconds.
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import fastbp
from fastbp.kernels import codes, cuda_config, loop

from ._util import assert_close

if cuda_config.cuda is None:
    pytest.skip("numba-cuda is not installed", allow_module_level=True)
from fastbp.kernels import cuda as ck  # noqa: E402  (after the skip)
from fastbp.kernels import cuda_sweep  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZES, ACTS = [3, 5, 4, 2], ["tanh", "relu", "softmax"]  # two hidden layers: two delta phases


@pytest.fixture(autouse=True)
def _small_blocks(small_cuda_blocks, monkeypatch):
    """Blocks of 8 threads (one 'warp' of 8 lanes: lane groups of 1 to 8 columns)."""
    monkeypatch.setattr(cuda_config, "SWEEP_THREADS", 8)


def _hyper(lr=0.1, momentum=0.0, nesterov=False, l2=0.0, betas=(0.9, 0.999), eps=1e-8,
           etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)):
    """The (N_HYPER,) float64 hyperparameters of one model (slots codes.H_*)."""
    h = np.zeros(codes.N_HYPER)
    h[codes.H_LR], h[codes.H_MOMENTUM], h[codes.H_NESTEROV] = lr, momentum, float(nesterov)
    h[codes.H_L2], h[codes.H_BETA1], h[codes.H_BETA2], h[codes.H_EPS] = l2, *betas, eps
    h[codes.H_ETA_MINUS], h[codes.H_ETA_PLUS] = etas
    h[codes.H_STEP_MIN], h[codes.H_STEP_MAX] = step_sizes
    return h


class Group:
    """The arrays of one sweep_epoch call for K models (the layouts of fastbp.kernels):
    model k's network seeded k, its own sample order and hyperparameters."""

    def __init__(self, hypers, opt="sgd", batch_size=3, n=7, dtype="float32", sizes=SIZES,
                 acts=ACTS, weights=False, seed=0, loss="cross_entropy", bias=True):
        dtype = np.dtype(dtype)
        K = len(hypers)
        nets = [fastbp.Network(sizes, activations=acts, loss=loss, dtype=dtype, seed=seed + k,
                               bias=bias) for k in range(K)]
        self.net = nets[0]
        rng = np.random.default_rng(seed + 100)
        self.X = rng.normal(size=(n, sizes[0])).astype(dtype)
        self.Y = (np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], n)]
                  if loss == "cross_entropy" else rng.uniform(0, 1, (n, sizes[-1])).astype(dtype))
        self.SW = (rng.uniform(0.5, 2.0, n).astype(dtype) if weights
                   else np.empty(0, dtype))
        P, units, rows = self.net.n_params, int(sum(sizes)), loop.workspace_rows(batch_size)
        self.params = np.stack([net.params for net in nets])
        self.state = np.zeros((K, 2, P), dtype)
        if opt == "rprop":
            self.state[:, 1] = np.array([h[codes.H_LR] for h in hypers])[:, None]
        self.steps = np.zeros((K, 1), np.int64)
        self.grad = np.zeros((K, P), dtype)
        self.A, self.Dl = np.zeros((K, rows * units), dtype), np.zeros((K, rows * units), dtype)
        self.cost, self.Yb = np.zeros((K, rows)), np.zeros((K, rows, sizes[-1]), dtype)
        self.Sb = np.zeros((K, rows if weights else 0), dtype)
        self.orders = np.stack([rng.permutation(n) for _ in range(K)]).astype(np.int64)
        self.active = np.ones(K, bool)
        self.hyper = np.stack(hypers)
        self.stats = np.zeros((K, 4))
        self.batch_size, self.opt = batch_size, codes.OPTIMIZERS[opt]

    def copy(self):
        other = object.__new__(Group)
        other.__dict__ = {k: v.copy() if isinstance(v, np.ndarray) else v
                          for k, v in self.__dict__.items()}
        return other

    def row(self, k):
        """A Group of model k alone (K = 1)."""
        other = self.copy()
        for name in ("params", "state", "steps", "grad", "A", "Dl", "cost", "Yb", "Sb",
                     "orders", "active", "hyper", "stats"):
            setattr(other, name, getattr(self, name)[k:k + 1].copy())
        return other

    def outputs(self):
        return self.params, self.state, self.steps, self.stats

    def sweep(self, kernels):
        kernels.sweep_epoch(self.params, self.state, self.steps, self.grad, self.A, self.Dl,
                            self.cost, self.Yb, self.Sb, self.X, self.Y, self.SW, self.orders,
                            self.active, self.batch_size, self.net.sizes, self.net.act_codes,
                            self.net.loss_code, self.opt, self.hyper, self.net.bias,
                            self.stats)

    def loop_by_rows(self):
        """loop.sweep_epoch's result through loop.train_epoch, row by row."""
        for k in np.flatnonzero(self.active):
            loop.train_epoch(self.params[k], self.state[k], self.steps[k], self.grad[k],
                             self.A[k], self.Dl[k], self.cost[k], self.Yb[k], self.Sb[k],
                             self.X, self.Y, self.SW, self.orders[k], self.batch_size,
                             self.net.sizes, self.net.act_codes, self.net.loss_code, self.opt,
                             self.hyper[k], self.net.bias, self.stats[k])


def _against_loop(group, epochs=2, what=""):
    """Both backends from the same arrays for ``epochs`` epochs (state, steps and orders
    carried across calls); the cuda one is returned."""
    ref = group.copy()
    dtype = group.params.dtype
    for epoch in range(epochs):
        group.sweep(ck)
        if dtype == np.float32:
            ref.sweep(loop)
        else:
            ref.loop_by_rows()
        for name, got, want in zip(("params", "state", "steps", "stats"), group.outputs(),
                                   ref.outputs()):
            assert_close(got, want, dtype, f"{name} after epoch {epoch}, {what}, cuda vs loop")
        group.orders, ref.orders = group.orders[:, ::-1].copy(), ref.orders[:, ::-1].copy()
    return group


CASES = {  # optimizer, hyperparameters of two models, batch size (7 samples)
    "sgd-momentum-online": ("sgd", [_hyper(0.1, 0.9, l2=0.01), _hyper(0.3, 0.5)], 1),
    "sgd-nesterov-minibatch": ("sgd", [_hyper(0.1, 0.9, True, 0.01), _hyper(0.2)], 3),
    "sgd-fullbatch": ("sgd", [_hyper(0.5, 0.9), _hyper(1.0, 0.0, l2=0.1)], 7),
    "adam-minibatch": ("adam", [_hyper(0.01, l2=0.01), _hyper(0.05, betas=(0.8, 0.99))], 3),
    "adam-online": ("adam", [_hyper(0.01), _hyper(0.02, eps=1e-6)], 1),
    "rprop-fullbatch": ("rprop", [_hyper(0.05, l2=0.01), _hyper(0.1, etas=(0.4, 1.3))], 7),
    "rprop-minibatch": ("rprop", [_hyper(0.05), _hyper(0.01)], 3),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_model_matches_the_loop_backend(case, dtype):
    opt, hypers, batch_size = CASES[case]
    _against_loop(Group(hypers, opt, batch_size, dtype=dtype), what=f"{case}, {dtype}")


def test_sample_weights_and_no_bias_match_the_loop_backend():
    group = Group([_hyper(0.1, 0.9, l2=0.01), _hyper(0.2)], "sgd", 3, dtype="float64",
                  weights=True, bias=False)
    group.SW[group.orders[0, 3:6]] = 0  # model 0's second batch weighs nothing: no update
    _against_loop(group, what="weights, no bias")
    # Epoch 2 runs the orders reversed: model 0's weightless samples then straddle two
    # batches, each with weight left (7 samples, batches of 3 + 3 + 1).
    assert group.steps[0, 0] == 2 + 3
    for b in group.net.biases:
        assert not b.any()
    start = 0
    for m in range(1, len(SIZES)):  # the biases of every model stay 0
        start += SIZES[m] * SIZES[m - 1]
        assert not group.params[:, start:start + SIZES[m]].any()
        start += SIZES[m]


def test_several_warps_per_block_match_the_loop_backend(monkeypatch):
    """Blocks of 2 warps (64 threads, the plan's choice for this shape) over layers wider
    than a warp's lane group: tiles shared out to warps in turn."""
    monkeypatch.setattr(cuda_config, "SWEEP_THREADS", 64)
    group = Group([_hyper(0.05), _hyper(0.1, 0.9)], "sgd", 3, n=5, dtype="float64",
                  sizes=[9, 11, 3], acts=["sigmoid", "softmax"])
    plan = ck._sweep_plan(ck._net(group.net.sizes, group.net.act_codes), 3, np.float64, 1,
                          group.net.loss_code, group.opt, True)
    assert plan.threads == 64
    _against_loop(group, epochs=1, what="64 threads")


@pytest.mark.parametrize("max_rows", [64, 2])
def test_a_model_equals_its_own_launch_bit_for_bit(monkeypatch, max_rows):
    """Model k of a K = 3 launch against its K = 1 launch, with the parameters and state in
    shared memory, the state in global memory, or all in global memory (W^T in scratch);
    batches of 3 whole or in pieces of 2 + 1 (a gradient buffer in scratch). The three
    give the same bits as each other too: where a value lives changes no arithmetic."""
    monkeypatch.setattr(cuda_config, "SWEEP_MAX_ROWS", max_rows)
    hypers = [_hyper(0.01, l2=0.01), _hyper(0.03), _hyper(0.02, betas=(0.8, 0.99))]
    start = Group(hypers, "adam", 3, dtype="float32", seed=5)
    results = []
    for mode in ("all", "params", "none"):
        monkeypatch.setattr(cuda_config, "SWEEP_IN_SHARED", mode)
        plan = ck._sweep_plan(ck._net(start.net.sizes, start.net.act_codes), 3, np.float32, 2,
                              start.net.loss_code, start.opt, True)
        assert plan.mode == mode and plan.rows == min(3, max_rows)
        group = start.copy()
        group.sweep(ck)
        for k in range(3):
            single = start.row(k)
            single.sweep(ck)
            for name, got, want in zip(("params", "state", "steps", "stats"),
                                       group.outputs(), single.outputs()):
                np.testing.assert_array_equal(got[k], want[0], err_msg=f"{name} of model {k}, "
                                              f"{mode}, pieces of {max_rows}")
        results.append(group.outputs())
    for mode, outputs in zip(("params", "none"), results[1:]):
        for name, got, want in zip(("params", "state", "steps", "stats"), outputs, results[0]):
            np.testing.assert_array_equal(got, want, err_msg=f"{name}, {mode} vs all")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's NumPy overflows
def test_inactive_models_are_untouched_and_divergence_is_flagged_like_loop():
    """Model 1 inactive (every row of it kept, stats too); model 2 diverges in its second
    batch (stats[2] = 1, that batch's update not applied, as loop); model 0 trains as it
    would alone."""
    hypers = [_hyper(0.1, 0.9), _hyper(0.1), _hyper(1e150)]  # model 2: w ~ 1e150, 1e300, inf
    group = Group(hypers, "sgd", 2, n=6, dtype="float64", sizes=[3, 4, 2],
                  acts=["identity", "identity"], loss="mse")
    group.active[1] = False
    group.stats[1] = [7.0, 8.0, 9.0, 10.0]
    before = [a[1].copy() for a in group.outputs()]
    alone = group.row(0)
    ref = group.copy()
    group.sweep(ck)
    ref.loop_by_rows()
    for name, got, was in zip(("params", "state", "steps", "stats"), group.outputs(), before):
        np.testing.assert_array_equal(got[1], was, err_msg=f"{name} of the inactive model")
    assert group.stats[2, 2] == 1.0 and ref.stats[2, 2] == 1.0
    assert_close(group.stats[2], ref.stats[2], "float64", "stats of the diverged model")
    assert_close(group.params[2], ref.params[2], "float64", "params of the diverged model")
    assert group.steps[2, 0] == ref.steps[2, 0]
    alone.sweep(ck)
    np.testing.assert_array_equal(group.params[0], alone.params[0])


def test_device_arrays_are_used_in_place():
    """Arrays already on the device are trained there (nothing copied back): the same
    numbers as host arrays. The CPU backends' workspaces, unused, may have no rows."""
    group = Group([_hyper(0.1, 0.9), _hyper(0.2)], "sgd", 3, dtype="float32")
    host = group.copy()
    host.sweep(ck)
    assert ck.sweep_workspace_rows(3) == 0
    K, dtype = 2, group.params.dtype
    group.A, group.Dl = np.empty((K, 0), dtype), np.empty((K, 0), dtype)
    group.cost, group.Yb = np.empty((K, 0)), np.empty((K, 0, SIZES[-1]), dtype)
    names = ("params", "state", "steps", "stats", "orders", "X", "Y")
    device = {name: ck.to_device(getattr(group, name)) for name in names}
    for name, array in device.items():
        setattr(group, name, array)
    group.sweep(ck)
    for name in ("params", "state", "steps", "stats"):
        got = device[name].copy_to_host()
        np.testing.assert_array_equal(got, getattr(host, name), err_msg=name)


def test_sweep_on_cuda_ends_where_the_loop_backend_does():
    """fastbp.Sweep(backend="cuda"), the public way in: every model's weights and losses
    within the float32 tolerance of the same sweep on the loop backend (float32: the loop
    backend's parallel sweep kernel is compiled for it by tests/test_sweep.py too)."""
    rng = np.random.default_rng(12)
    X, y = rng.normal(size=(9, 3)).astype(np.float32), rng.integers(0, 2, 9)
    runs = {}
    for backend in ("cuda", "loop"):
        sweep = fastbp.Sweep([3, 4, 2], activations=["tanh", "softmax"], loss="cross_entropy",
                             dtype="float32", schedule="minibatch", batch_size=4,
                             optimizer="adam", backend=backend,
                             grid={"learning_rate": [0.01, 0.05], "seed": [0]})
        runs[backend] = sweep.fit(X, y, epochs=2)
    for i in range(2):
        got, want = runs["cuda"], runs["loop"]
        assert_close(got.networks[i].params, want.networks[i].params, "float32",
                     f"params of model {i}, Sweep cuda vs loop")
        assert_close(got.history[i].loss, want.history[i].loss, "float32",
                     f"loss of model {i}, Sweep cuda vs loop")


def test_plans_put_what_fits_in_shared_memory(monkeypatch):
    """64-32-10 with momentum at batch 16 keeps everything in shared memory, a piece of the
    whole batch, 4 warps; 784-128-10 cannot (P = 101,770): all in global memory, batches of
    64 in pieces that fit 48 KiB; the smallest networks get one warp."""
    small = fastbp.Network([64, 32, 10], activations=["tanh", "softmax"])
    big = fastbp.Network([784, 128, 10])
    tiny = fastbp.Network([3, 5, 2])

    def plan(net, batch_size, n_state, budget=228 * 1024, threads=128):
        monkeypatch.setattr(cuda_config, "SWEEP_THREADS", threads)
        return cuda_sweep.plan_for(ck._net(net.sizes, net.act_codes), batch_size, np.float32,
                                   n_state, codes.CROSS_ENTROPY, codes.SGD, True, budget)

    p = plan(small, 16, 1)
    assert (p.mode, p.rows, p.threads, p.scratch) == ("all", 16, 128, 0)
    assert p.nbytes < 30 * 1024
    p = plan(small, 16, 2, budget=cuda_config.BLOCK_SHARED_BYTES)
    assert p.mode == "all" and p.nbytes <= cuda_config.BLOCK_SHARED_BYTES
    p = plan(big, 64, 2)
    assert p.mode == "none" and 1 <= p.rows < 64 and p.scratch == 2 * big.n_params
    assert p.nbytes <= 48 * 1024
    p = plan(big, 1, 0)
    assert p.mode == "none" and p.rows == 1 and p.scratch == big.n_params  # W^T, no buffer
    assert plan(tiny, 4, 0).threads == 32


def test_device_check_quick_writes_its_report(tmp_path):
    """benchmarks/device_check.py --quick under the simulator: every step runs (or is
    recorded as skipped, torch and cupy being absent), the JSON says so, in seconds."""
    out = tmp_path / "report.json"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_check.py"),
                           "--out", str(out), "--quick"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["simulator"] is True
    assert {"python", "numba", "numba_cuda", "device"} <= set(report["environment"])
    steps = report["steps"]
    assert list(steps) == ["correctness", "fused_epoch", "launch_overhead", "layers", "sweep"]
    for name, step in steps.items():
        assert step["status"] in ("ok", "skipped"), (name, step)
        assert step["seconds"] >= 0
    assert steps["correctness"]["status"] == "ok"
    checks = steps["correctness"]["checks"]  # ok: True, or None where time ran out
    assert checks["fused_shared_float32_8threads"]["ok"] is True, checks
    assert all(c["ok"] is not False for c in checks.values()), checks
    sweep = steps["sweep"]
    assert sweep["status"] == "ok" and sweep["fastbp"]["model_samples_per_s"] > 0
    assert steps["fused_epoch"]["rows"] and steps["launch_overhead"]["empty_kernel_us"] > 0
    assert "progress" in proc.stdout
