"""The cuda backend beyond the tests every backend shares (tests/conftest.py's ``backend``
fixture): kernels on device arrays, Trainer against the loop backend through every way of
running an epoch (one fused launch with the parameters in shared or in global memory, and
per-layer launches), fused plans, divergence, and the import and require() contract.

Runs on the CUDA simulator when no GPU is present (tests/conftest.py), with tiny thread
blocks so that the multi-block paths run.
"""
import subprocess
import sys

import numpy as np
import pytest

import fastbp
import fastbp.network
from fastbp import backends
from fastbp.kernels import cuda as ck
from fastbp.kernels import cuda_config as ck_config
from fastbp.kernels import codes, loop, vectorized

from ._util import assert_close, data
from .test_gradients import N, SIZES, _net, _reference_pass

needs_cuda = pytest.mark.skipif(ck.cuda is None, reason="numba-cuda is not installed")


@pytest.fixture(autouse=True)
def _small_blocks(small_cuda_blocks):
    """Every test here runs with tiny thread blocks (conftest.small_cuda_blocks)."""


@pytest.fixture(params=["fused", "fused-global", "per-layer"])
def path(request, monkeypatch):
    """Force train_epoch through one launch per epoch with the parameters in shared memory
    ("fused") or in global memory ("fused-global"), or through per-layer launches."""
    if request.param == "per-layer":
        monkeypatch.setattr(ck_config, "FUSED", False)
        return request.param
    monkeypatch.setattr(ck_config, "FUSED", True)
    in_shared = request.param == "fused"
    monkeypatch.setattr(ck_config, "FUSED_PARAMS_IN_SHARED", in_shared)
    plan_of = ck.fused_plan

    def checked_plan(*args):
        plan = plan_of(*args)
        assert plan is not None and plan.in_shared == in_shared, plan
        return plan

    def fail(*args, **kwargs):
        raise AssertionError("train_epoch took the per-layer path; expected the fused one")
    monkeypatch.setattr(ck, "fused_plan", checked_plan)
    monkeypatch.setattr(ck, "_per_layer_epoch", fail)
    return request.param


# -- kernels against the vectorized formulation ----------------------------------------------

@needs_cuda
def test_cuda_kernels_take_device_arrays_without_copies(dtype):
    net = _net("sigmoid", "softmax", "cross_entropy", dtype=dtype)
    X, Y = data(N, SIZES[0], SIZES[-1], seed=4, dtype=dtype)
    Y = Y / Y.sum(axis=1, keepdims=True)  # softmax targets
    A_ref, D_ref = _reference_pass(net, X, Y, N)
    sizes, acts = np.array(net.sizes), net.act_codes
    A = ck.to_device(np.concatenate([X.ravel(), np.zeros(A_ref.size - X.size, dtype)]))
    Dl, params, dY = ck.empty(A_ref.size, dtype), ck.to_device(net.params), ck.to_device(Y)
    cost, grad = ck.empty(N, np.float64), ck.to_device(np.zeros_like(net.params))
    ck.forward(A, params, N, sizes, acts)
    ck.sample_costs(cost, A, dY, N, sizes, acts, net.loss_code)
    ck.output_delta(Dl, A, dY, np.empty(0, dtype), N, sizes, acts, net.loss_code)
    ck.hidden_deltas(Dl, A, params, N, sizes, acts)
    ck.accumulate_gradients(grad, Dl, A, N, sizes)
    assert not isinstance(A, np.ndarray) and not isinstance(grad, np.ndarray)
    assert_close(ck.to_host(A, np.empty_like(A_ref)), A_ref, dtype, "forward, device arrays")
    D_host = ck.to_host(Dl, np.empty_like(A_ref))
    assert_close(D_host[N * SIZES[0]:], D_ref[N * SIZES[0]:], dtype, "deltas, device arrays")
    grad_ref = np.zeros_like(net.params)
    vectorized.accumulate_gradients(grad_ref, D_ref, A_ref, N, sizes)
    assert_close(ck.to_host(grad, np.empty_like(grad_ref)), grad_ref, dtype,
                 "gradients, device arrays")
    cost_ref = np.empty(N)
    vectorized.sample_costs(cost_ref, A_ref, Y, N, sizes, acts, net.loss_code)
    assert_close(ck.to_host(cost, np.empty(N)), cost_ref, dtype, "costs, device arrays")


# -- Trainer ---------------------------------------------------------------------------------

SCHEDULES = [("online", 1), ("minibatch", 3), ("fullbatch", 1)]  # minibatch: 3 + 3 + 1
OPTIONS = {"plain": dict(learning_rate=0.3),
           "momentum+l2": dict(learning_rate=0.3, momentum=0.9, l2=0.01),
           "nesterov+l2": dict(learning_rate=0.3, momentum=0.9, nesterov=True, l2=0.01)}


def _train(backend, dtype, schedule, batch_size, options, epochs=1, bias=True, X=None, Y=None):
    net = fastbp.Network([3, 5, 4, 2], activations=["tanh", "relu", "softmax"],
                         loss="cross_entropy", dtype=dtype, seed=0, bias=bias)
    if X is None:
        X, Y = data(7, 3, 2, seed=1, dtype=dtype, labels=True)
    trainer = fastbp.Trainer(net, schedule=schedule, batch_size=batch_size, seed=3,
                             backend=backend, **options)
    history = trainer.fit(X, Y, epochs=epochs)
    return net, trainer, history


def _check_against_loop(dtype, schedule, batch_size, options, **kwargs):
    net, trainer, history = _train("cuda", dtype, schedule, batch_size, options, **kwargs)
    ref, ref_trainer, ref_history = _train("loop", dtype, schedule, batch_size, options, **kwargs)
    what = f"{schedule}, {options}, backend=cuda vs loop"
    assert_close(net.params, ref.params, dtype, f"params, {what}")
    assert_close(trainer.velocity, ref_trainer.velocity, dtype, f"velocity, {what}")
    assert_close(history.loss, ref_history.loss, dtype, f"history.loss, {what}")
    return net


@needs_cuda
@pytest.mark.parametrize("schedule,batch_size", SCHEDULES)
@pytest.mark.parametrize("option", list(OPTIONS))
def test_trainer_matches_loop_float64(schedule, batch_size, option, path):
    # Two epochs carry velocity across train_epoch calls; one on the slow per-layer path.
    _check_against_loop("float64", schedule, batch_size, OPTIONS[option],
                        epochs=1 if path == "per-layer" else 2)


@needs_cuda
@pytest.mark.parametrize("schedule,batch_size", SCHEDULES)
def test_trainer_matches_loop_float32(schedule, batch_size, path):
    _check_against_loop("float32", schedule, batch_size, OPTIONS["nesterov+l2"])


@needs_cuda
def test_trainer_without_bias_matches_loop(path):
    net = _check_against_loop("float64", "minibatch", 3, OPTIONS["momentum+l2"], bias=False)
    assert all((b == 0).all() for b in net.biases)


@needs_cuda
def test_batches_in_pieces_match_loop(path, monkeypatch):
    """Batches of 3 worked through in pieces of 2 (+ 1) samples: the fused epoch with its
    gradient buffer in shared memory, the per-layer epoch with WORK_ROWS pieces."""
    monkeypatch.setattr(ck_config, "FUSED_MAX_ROWS", 2)
    monkeypatch.setattr(ck_config, "WORK_ROWS", 2)
    if path != "per-layer":
        net = fastbp.Network([3, 5, 4, 2], dtype="float64")
        plan = ck.fused_plan(3, net.sizes, net.act_codes, np.float64, True)
        assert plan.rows == 2 and plan.grad_at >= 0  # a gradient buffer sums the pieces
    _check_against_loop("float64", "minibatch", 3, OPTIONS["nesterov+l2"])
    _check_against_loop("float64", "fullbatch", 1, OPTIONS["plain"])


@needs_cuda
def test_step_matches_loop(path):
    X, Y = data(5, 3, 2, seed=2)
    nets = []
    for backend in ("cuda", "loop"):
        net = fastbp.Network([3, 4, 2], activations="sigmoid", dtype="float64", seed=1)
        trainer = fastbp.Trainer(net, backend=backend, **OPTIONS["momentum+l2"])
        costs = [trainer.step(X[rows], Y[rows]) for rows in ([0, 1, 2], [3, 4], [0, 4])]
        nets.append((net.params.copy(), costs))
    assert_close(nets[0][0], nets[1][0], "float64", "params after steps, cuda vs loop")
    assert_close(nets[0][1], nets[1][1], "float64", "step costs, cuda vs loop")


def test_fused_plan_limits():
    if ck.cuda is None:
        pytest.skip("numba-cuda is not installed")
    small = fastbp.Network([64, 32, 10], activations=["sigmoid", "softmax"])
    big = fastbp.Network([784, 128, 10])
    plan = ck.fused_plan(32, small.sizes, small.act_codes, np.float32, False)
    assert plan.in_shared and plan.rows == 32 and plan.grad_at == -1  # one piece, no buffer
    assert plan.nbytes <= ck_config.FUSED_SHARED_BYTES
    plan = ck.fused_plan(64, small.sizes, small.act_codes, np.float32, True)
    assert plan.in_shared and plan.rows < 64 and plan.grad_at >= 0 and plan.s0_at >= 0
    # P = 101,770 floats do not fit in shared memory: online training keeps them in global
    # memory; batches of 32 run per layer, over the whole GPU.
    plan = ck.fused_plan(1, big.sizes, big.act_codes, np.float32, True)
    assert not plan.in_shared and plan.rows == 1 and plan.nbytes <= ck_config.FUSED_SHARED_BYTES
    assert ck.fused_plan(32, big.sizes, big.act_codes, np.float32, False) is None
    assert ck.fused_plan(4096, small.sizes, small.act_codes, np.float32, False) is None


# -- divergence ------------------------------------------------------------------------------

@needs_cuda
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's NumPy overflows
def test_divergence_raises_and_keeps_finite_weights(path):
    X, Y = data(12, 3, 2, seed=8)
    net = fastbp.Network([3, 5, 4, 2], activations="identity", seed=0, dtype="float64")
    with pytest.raises(FloatingPointError, match=r"epoch 1: the loss is not finite after 3 "):
        fastbp.Trainer(net, schedule="online", learning_rate=10.0, seed=0, backend="cuda").fit(
            X, Y * 1e3, epochs=3)
    assert np.isfinite(net.params).all()


@needs_cuda
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's NumPy overflows
def test_train_epoch_stops_at_a_non_finite_batch_like_loop(path, dtype):
    """Batch 2 of 3 has a NaN input: it and the batches after it change nothing, and
    stats say so -- as in the loop backend."""
    net = fastbp.Network([3, 4, 2], activations="sigmoid", dtype=dtype, seed=2)
    X, Y = data(7, 3, 2, seed=9, dtype=dtype)
    X[4, 1] = np.nan
    order = np.arange(7, dtype=np.int64)
    results = []
    for kernels in (ck, loop):
        params, state = net.params.copy(), np.zeros((2, net.n_params), dtype)
        steps = np.zeros(1, np.int64)
        hyper = fastbp.Trainer(net, learning_rate=0.5, momentum=0.9, l2=0.01).hyperparameters(0.5)
        units = int(net.sizes.sum())
        rows = kernels.workspace_rows(3)
        stats = np.zeros(4)
        A, Dl = np.zeros(rows * units, dtype), np.zeros(rows * units, dtype)
        no_weights = np.empty(0, dtype)
        kernels.train_epoch(params, state, steps, np.zeros_like(params), A, Dl, np.zeros(rows),
                            np.zeros((rows, 2), dtype), no_weights, X, Y, no_weights, order, 3,
                            np.array(net.sizes), net.act_codes, net.loss_code, codes.SGD, hyper,
                            True, stats)
        assert steps[0] == 1, "one update applied before the stop"
        results.append((params, state[0], stats))
    (p, v, stats), (p_ref, v_ref, stats_ref) = results
    assert stats[2] == 1.0 and stats[1] == 3.0
    assert_close(stats, stats_ref, dtype, "stats, backend=cuda vs loop")
    assert_close(p, p_ref, dtype, "params after the stop, backend=cuda vs loop")
    assert_close(v, v_ref, dtype, "velocity after the stop, backend=cuda vs loop")


# -- import and require() ----------------------------------------------------------------------

def test_require_names_the_extra_when_numba_cuda_is_missing(monkeypatch):
    monkeypatch.setattr(ck, "cuda", None)
    monkeypatch.setattr(ck_config, "cuda", None)
    monkeypatch.setattr(ck_config, "IMPORT_ERROR", ImportError("No module named 'numba_cuda'"))
    with pytest.raises(RuntimeError, match=r'numba-cuda.*pip install "fastbp\[cuda\]"'):
        ck.require()
    with pytest.raises(RuntimeError, match=r'pip install "fastbp\[cuda\]"'):
        backends.get("cuda")


def test_require_says_when_no_gpu_is_found(monkeypatch):
    class NoGPU:
        @staticmethod
        def is_available():
            return False
    monkeypatch.setattr(ck, "cuda", NoGPU)
    with pytest.raises(RuntimeError, match="no usable CUDA GPU"):
        ck.require()


def _run(code):
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_importing_fastbp_does_not_import_numba_cuda():
    out = _run("import sys, numpy as np, fastbp, fastbp.backends\n"
               "net = fastbp.Network([3, 4, 2], seed=0)\n"
               "fastbp.Trainer(net).fit(np.zeros((4, 3)), np.zeros((4, 2)), epochs=1)\n"
               "print('numba.cuda' in sys.modules)")
    assert out == "False"


def test_cuda_module_imports_without_numba_cuda():
    out = _run("import sys\n"
               "sys.modules['numba_cuda'] = None  # as if not installed\n"
               "import fastbp\n"
               "from fastbp import backends\n"
               "try:\n"
               "    backends.get('cuda')\n"
               "except RuntimeError as exc:\n"
               "    print(exc)\n")
    assert "pip install \"fastbp[cuda]\"" in out


# -- issue 11: every optimizer fused, split gradients, routing, caches -----------------------

@needs_cuda
@pytest.mark.parametrize("optimizer,schedule,batch_size", [("adam", "minibatch", 3),
                                                           ("rprop", "fullbatch", 1)])
def test_adam_and_rprop_match_loop(optimizer, schedule, batch_size, path):
    """Adam and RPROP run on every path -- the fused epoch included -- as the loop backend
    does, over two epochs (state and update count carried across calls)."""
    options = dict(learning_rate=0.05, optimizer=optimizer, l2=0.01)
    net, trainer, history = _train("cuda", "float64", schedule, batch_size, options, epochs=2)
    ref, ref_trainer, ref_history = _train("loop", "float64", schedule, batch_size, options,
                                           epochs=2)
    what = f"{optimizer}, backend=cuda ({path}) vs loop"
    assert_close(net.params, ref.params, "float64", f"params, {what}")
    assert_close(trainer.state, ref_trainer.state, "float64", f"state, {what}")
    assert trainer.steps[0] == ref_trainer.steps[0]
    assert_close(history.loss, ref_history.loss, "float64", f"history.loss, {what}")


@needs_cuda
def test_gradients_split_over_samples_match_vectorized(monkeypatch, dtype):
    """A layer's gradient summed in chunks of samples (blockIdx.z), the partial sums reduced
    in a fixed order, equals the one-chunk sum."""
    monkeypatch.setattr(ck_config, "GRAD_SPLIT_BLOCKS", 64)
    monkeypatch.setattr(ck_config, "GRAD_SPLIT_MIN_ROWS", 2)
    net = _net("sigmoid", "softmax", "cross_entropy", dtype=dtype)
    X, Y = data(N, SIZES[0], SIZES[-1], seed=4, dtype=dtype)
    Y = Y / Y.sum(axis=1, keepdims=True)
    A_ref, D_ref = _reference_pass(net, X, Y, N)
    from fastbp.kernels import cuda_layers
    assert cuda_layers.grad_splits(N, SIZES[0], SIZES[1])[0] > 1
    grad, grad_ref = np.full_like(net.params, 0.5), np.full_like(net.params, 0.5)
    ck.accumulate_gradients(grad, D_ref, A_ref, N, net.sizes)
    vectorized.accumulate_gradients(grad_ref, D_ref, A_ref, N, net.sizes)
    assert_close(grad, grad_ref, dtype, "gradients in chunks, backend=cuda")


def test_prefers_cpu_rule():
    """The documented cases of the rule with the constants of issue 20's estimates: one
    network trains faster on the CPU unless a batch is large enough for the per-layer path
    (784-128-10 online included, where the fused epoch's one block is 5-10x slower)."""
    assert ck_config.prefers_cpu([64, 32, 10], 1)
    assert ck_config.prefers_cpu([784, 128, 10], 1)
    assert ck_config.prefers_cpu([64, 32, 10], 16)
    assert not ck_config.prefers_cpu([64, 32, 10], 1024)
    assert not ck_config.prefers_cpu([784, 128, 10], 64)
    assert not ck_config.prefers_cpu([784, 512, 512, 10], 1024)
    cpu, gpu = ck_config.step_seconds([784, 128, 10], 1)
    assert 20e-6 < cpu < 40e-6 and 60e-6 < gpu < 100e-6  # 31 us against 78 us


def test_fused_max_work_is_where_the_two_gpu_paths_meet():
    """FUSED_MAX_WORK (batch_size * P) is derived from the cost model: for a 2-layer
    network the fused epoch's time and the per-layer path's cross between 2^17 and 2^19."""
    def fused(work):
        return 6 * PHASE + 6.0 * work / ck_config.FUSED_FLOPS

    def per_layer(work):
        return 9 * ck_config.LAUNCH_SECONDS + 6.0 * work / ck_config.GPU_FLOPS
    PHASE = ck_config.PHASE_SECONDS
    assert fused(1 << 17) < per_layer(1 << 17) and fused(1 << 19) > per_layer(1 << 19)
    assert (1 << 17) < ck_config.FUSED_MAX_WORK < (1 << 19)


@pytest.mark.parametrize("name,value,message", [
    ("FUSED_THREADS", 512, r"FUSED_THREADS = 512: .* registers .* use at most 384"),
    ("FUSED_THREADS", 48, r"FUSED_THREADS = 48: a multiple of 32"),
    ("SWEEP_THREADS", 1024, r"SWEEP_THREADS = 1024: .* registers"),
    ("SWEEP_THREADS", 2048, r"SWEEP_THREADS = 2048: a block holds at most 1024"),
    ("TILE", 33, r"TILE = 33: blocks of TILE x TILE = 1089 threads"),
    ("TILE", 26, r"TILE = 26: 676 threads x \d+ registers"),
    ("FUSED_SHARED_BYTES", 64 * 1024, r"FUSED_SHARED_BYTES = 65536"),
    ("SWEEP_TILE_ROWS", 3, r"SWEEP_TILE_ROWS = 3: a power of two"),
])
def test_tunables_that_would_not_launch_are_refused_by_name(monkeypatch, name, value, message):
    """cuda_config.check_tunables (run at import, and when a plan is made) names the
    tunable and why: a block's registers, threads, shared memory."""
    ck_config.check_tunables()  # the defaults pass
    monkeypatch.setattr(ck_config, name, value)
    with pytest.raises(ValueError, match=message):
        ck_config.check_tunables()
    if name == "FUSED_THREADS" and ck.cuda is not None:
        net = fastbp.Network([3, 4, 2])
        with pytest.raises(ValueError, match="FUSED_THREADS"):
            ck.fused_plan(2, net.sizes, net.act_codes, np.float32, 0)


def test_backend_auto_picks_by_the_cost_model(monkeypatch):
    """backend="auto": "cuda" only with a GPU (never the simulator) where prefers_cpu
    predicts a win, else "loop"; one line says why. Other names pass through."""
    assert backends.pick("vectorized", [3, 4, 2], 1) == ("vectorized",
                                                        "backend='vectorized' as asked")
    with pytest.raises(ValueError, match="backend"):
        backends.pick("gpu", [3, 4, 2], 1)
    if ck_config.SIMULATOR:
        name, reason = backends.pick("auto", [784, 512, 512, 10], 1024)
        assert name == "loop" and "simulator" in reason
    if ck_config.cuda is None:
        return

    class GPU:
        @staticmethod
        def is_available():
            return True
    monkeypatch.setattr(ck_config, "SIMULATOR", False)
    monkeypatch.setattr(ck_config, "cuda", GPU)
    name, reason = backends.pick("auto", [784, 128, 10], 1)
    assert name == "loop" and "784-128-10 in batches of 1" in reason and "CPU" in reason
    name, reason = backends.pick("auto", [784, 512, 512, 10], 1024)
    assert name == "cuda" and "GPU" in reason and "prefers_cpu" in reason

    class NoGPU:
        @staticmethod
        def is_available():
            return False
    monkeypatch.setattr(ck_config, "cuda", NoGPU)
    assert backends.pick("auto", [784, 512, 512, 10], 1024)[0] == "loop"


@needs_cuda
def test_slow_on_gpu_warning_once_per_fit(monkeypatch):
    monkeypatch.setattr(ck_config, "ROUTING_WARNINGS", True)
    monkeypatch.setattr(ck_config, "prefers_cpu", lambda sizes, batch_size: True)
    X, Y = data(4, 3, 2, seed=1, labels=True)
    net = fastbp.Network([3, 4, 2], activations=["tanh", "softmax"], loss="cross_entropy")
    trainer = fastbp.Trainer(net, schedule="online", backend="cuda")
    with pytest.warns(ck_config.SlowOnGPUWarning, match="backend='loop'") as caught:
        trainer.fit(X, Y, epochs=2)
    assert len([w for w in caught if w.category is ck_config.SlowOnGPUWarning]) == 1


@needs_cuda
def test_device_cache_starts_afresh_for_a_new_context(monkeypatch):
    """Arrays cached for one context (sizes, plans, scratch) are not handed to another:
    after cuda.close(), on another device, or in a forked child."""
    cache = ck_config.device_cache()
    cache["probe"] = 1
    assert ck_config.device_cache() is cache
    monkeypatch.setattr(ck_config.os, "getpid", lambda: -1)  # as in a forked child
    assert "probe" not in ck_config.device_cache()
    monkeypatch.undo()
    if ck_config.SIMULATOR:
        return  # one fake context, a new object per call: the simulator keys on the process

    class Other:  # a context made after cuda.close(): same device, another object
        device = ck_config.cuda.current_context().device
    monkeypatch.setattr(ck_config.cuda, "current_context", lambda: Other)
    assert "probe" not in ck_config.device_cache()


@needs_cuda
@pytest.mark.parametrize("tile", [2, 3])
def test_tiled_kernels_across_blocks_and_slices(monkeypatch, tile):
    """Layers and batches larger than a block's (TILE R) x (TILE R) tile, and sums longer
    than a TILE slice: every block, slice edge and register-block position against the
    vectorized formulation (TILE 3: a block side that is not a power of two)."""
    monkeypatch.setattr(ck_config, "TILE", tile)
    sizes, n = [11, 19, 6], 13
    net = _net("tanh", "softmax", "cross_entropy", dtype="float64", sizes=sizes)
    X, Y = data(n, sizes[0], sizes[-1], seed=5)
    Y = Y / Y.sum(axis=1, keepdims=True)
    A_ref, D_ref = _reference_pass(net, X, Y, n)
    A = A_ref.copy()
    A[n * sizes[0]:] = 0
    ck.forward(A, net.params, n, net.sizes, net.act_codes)
    assert_close(A, A_ref, "float64", f"forward, TILE={tile}")
    Dl = D_ref.copy()
    Dl[:n * (sizes[0] + sizes[1])] = 0  # block L given, block 1 recomputed
    ck.hidden_deltas(Dl, A_ref, net.params, n, net.sizes, net.act_codes)
    assert_close(Dl[n * sizes[0]:], D_ref[n * sizes[0]:], "float64", f"deltas, TILE={tile}")
    grad, grad_ref = np.zeros_like(net.params), np.zeros_like(net.params)
    ck.accumulate_gradients(grad, D_ref, A_ref, n, net.sizes)
    vectorized.accumulate_gradients(grad_ref, D_ref, A_ref, n, net.sizes)
    assert_close(grad, grad_ref, "float64", f"gradients, TILE={tile}")


@needs_cuda
def test_fused_epoch_with_several_warps_matches_loop(monkeypatch, path, optimizer="adam"):
    """Blocks of 2 warps of 8 lanes (FUSED_THREADS 16) over layers wider than a warp and
    than the warps: rows of W shared out to warps in rounds, lanes summed by _lanes_sum."""
    if path == "per-layer":
        pytest.skip("the fused epoch's own test")
    monkeypatch.setattr(ck_config, "FUSED_THREADS", 16)
    X, Y = data(5, 9, 3, seed=6, labels=True)
    results = []
    for backend in ("cuda", "loop"):
        net = fastbp.Network([9, 11, 3], activations=["sigmoid", "softmax"],
                             loss="cross_entropy", dtype="float64", seed=1)
        trainer = fastbp.Trainer(net, schedule="minibatch", batch_size=3, seed=2,
                                 learning_rate=0.1, optimizer=optimizer, backend=backend)
        history = trainer.fit(X, Y, epochs=1)
        results.append((net.params, trainer.state, history.loss))
    for what, got, want in zip(("params", "state", "loss"), results[0], results[1]):
        assert_close(got, want, "float64", f"{what}, {optimizer}, FUSED_THREADS=16 ({path})")


@needs_cuda
@pytest.mark.parametrize("work_rows", [8, 4])
def test_per_layer_epoch_with_chunked_gradients_matches_loop(monkeypatch, work_rows):
    """Per-layer epochs whose layer gradients are split over samples: a batch in one piece
    (the update sums the chunks itself) and in pieces of 4 + 3 (one _sum_parts launch per
    piece), against the loop backend."""
    monkeypatch.setattr(ck_config, "FUSED", False)
    monkeypatch.setattr(ck_config, "TILE", 2)
    monkeypatch.setattr(ck_config, "GRAD_SPLIT_BLOCKS", 64)
    monkeypatch.setattr(ck_config, "GRAD_SPLIT_MIN_ROWS", 2)
    monkeypatch.setattr(ck_config, "WORK_ROWS", work_rows)
    from fastbp.kernels import cuda_layers
    assert cuda_layers.grad_splits(min(7, work_rows), 3, 5)[0] > 1
    _check_against_loop("float64", "fullbatch", 1, OPTIONS["momentum+l2"])
    _check_against_loop("float32", "fullbatch", 1, dict(learning_rate=0.05, optimizer="adam"))
