"""fastbp.Sweep: every model ends where its own Trainer.fit ends (bit for bit on the loop
backend), per-model divergence and early stopping, bad grids refused before training, and
a Dask cluster giving the local result."""
import numpy as np
import pytest

import fastbp

from ._util import data

SIZES = [3, 6, 4]
FIXED = dict(activations=["tanh", "softmax"], loss="cross_entropy")


def _single(setting, fixed, X, y, epochs, **fit):
    """The model a sweep promises to equal: Network + Trainer with the same settings."""
    kw = {**fixed, **setting}
    seed = kw.pop("seed", None)
    net_kw = {k: kw.pop(k) for k in ("activations", "loss", "dtype", "bias") if k in kw}
    net = fastbp.Network(kw.pop("layer_sizes", SIZES), seed=seed, **net_kw)
    history = fastbp.Trainer(net, seed=seed, **kw).fit(X, y, epochs=epochs, **fit)
    return net, history


@pytest.mark.parametrize("schedule,optimizer,grid", [
    ("online", "sgd", {"learning_rate": [0.05, 0.2], "momentum": [0.0, 0.9], "seed": [0, 1]}),
    ("minibatch", "sgd", {"l2": [0.0, 0.01], "nesterov": [False, True], "seed": [2, 3]}),
    ("minibatch", "adam", {"learning_rate": [0.01, 0.03], "betas": [(0.9, 0.999), (0.8, 0.99)]}),
    ("fullbatch", "rprop", {"learning_rate": [0.01, 0.1], "etas": [(0.5, 1.2), (0.4, 1.3)]}),
])
def test_every_model_equals_its_own_fit(schedule, optimizer, grid, backend):
    if backend == "cuda":  # the simulator runs threads one by one: two models of the grid
        first = next(iter(grid))
        grid = {k: v if k == first else v[:1] for k, v in grid.items()}
    X, y = data(31, 3, 4, seed=1, labels=True)
    Xv, yv = data(9, 3, 4, seed=2, labels=True)
    fixed = dict(FIXED, schedule=schedule, batch_size=4, optimizer=optimizer, backend=backend,
                 momentum=0.5 if "nesterov" in grid else 0.0)
    if "momentum" in grid:
        fixed.pop("momentum")
    if "seed" not in grid:
        fixed["seed"] = 7
    sweep = fastbp.Sweep(SIZES, grid=grid, **fixed)
    result = sweep.fit(X, y, epochs=3, validation_data=(Xv, yv))
    assert len(result) == np.prod([len(v) for v in grid.values()])
    for i, setting in enumerate(result.settings):
        net, history = _single(setting, fixed, X, y, 3, validation_data=(Xv, yv))
        what = f"model {i} {setting}, backend={backend}"
        if backend == "cuda":  # the sweep kernel, not Trainer.fit's kernels: rounding apart
            np.testing.assert_allclose(result.networks[i].params, net.params, rtol=2e-4,
                                       atol=2e-6, err_msg=what)
            np.testing.assert_allclose(result.history[i].loss, history.loss, rtol=2e-4)
            np.testing.assert_allclose(result.history[i].val_loss, history.val_loss, rtol=2e-4)
            continue
        np.testing.assert_array_equal(result.networks[i].params, net.params, err_msg=what)
        assert result.history[i].loss == history.loss, what
        assert result.history[i].val_loss == history.val_loss, what


def test_grid_order_settings_table_and_best():
    X, y = data(20, 3, 4, seed=3, labels=True)
    grid = {"learning_rate": [0.01, 0.5], "seed": [0, 1, 2]}
    result = fastbp.Sweep(SIZES, grid=grid, **FIXED).fit(X, y, epochs=2)
    assert result.settings == [{"learning_rate": lr, "seed": s} for lr in (0.01, 0.5)
                               for s in (0, 1, 2)]
    table = result.table()
    assert [row["seed"] for row in table] == [0, 1, 2, 0, 1, 2]
    assert all(set(row) >= {"learning_rate", "seed", "loss", "epochs", "diverged"}
               for row in table)
    best = result.best()
    assert table[best]["loss"] == min(row["loss"] for row in table)


def test_threads_do_not_change_a_model():
    import numba
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only: nothing to compare")
    X, y = data(40, 3, 4, seed=4, labels=True)
    grid = {"learning_rate": [0.05, 0.1, 0.2], "seed": [0, 1, 2]}
    runs = [fastbp.Sweep(SIZES, grid=grid, threads=t, **FIXED).fit(X, y, epochs=2)
            for t in (1, 2)]
    for a, b in zip(runs[0].networks, runs[1].networks):
        np.testing.assert_array_equal(a.params, b.params)


def test_a_diverged_model_stops_the_others_go_on():
    X, Y = data(30, 3, 2, seed=5)
    Y = Y * 1e3
    sweep = fastbp.Sweep([3, 4, 2], activations=["tanh", "identity"], schedule="online",
                         grid={"learning_rate": [1e-4, 50.0], "seed": [0, 1]})
    result = sweep.fit(X, Y, epochs=4)
    for i, s in enumerate(result.settings):
        h = result.history[i]
        assert np.isfinite(result.networks[i].params).all()
        if s["learning_rate"] == 50.0:
            assert h.diverged and h.epochs < 4
        else:
            assert not h.diverged and h.epochs == 4
    assert result.settings[result.best()]["learning_rate"] == 1e-4


def test_early_stopping_acts_per_model():
    X, y = data(30, 3, 4, seed=6, labels=True)
    Xv, yv = data(30, 3, 4, seed=7, labels=True)
    grid = {"learning_rate": [0.001, 3.0], "seed": [0]}
    result = fastbp.Sweep(SIZES, momentum=0.9, grid=grid, **FIXED).fit(
        X, y, epochs=40, validation_data=(Xv, yv), patience=2)
    for i, setting in enumerate(result.settings):
        net, history = _single(setting, dict(FIXED, momentum=0.9), X, y, 40,
                               validation_data=(Xv, yv), patience=2)
        assert result.history[i].epochs == history.epochs
        assert result.history[i].stopped_early == history.stopped_early
        np.testing.assert_array_equal(result.networks[i].params, net.params)


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(grid={"learning_rat": [0.1]}), ValueError, "not a keyword of Network or Trainer"),
    (dict(grid={"learning_rate": []}), ValueError, "is empty"),
    (dict(grid={"learning_rate": 0.1}), TypeError, "must be a list"),
    (dict(grid={"seed": [0]}, seed=1), ValueError, "both a fixed setting and a grid key"),
    (dict(grid={"learning_rate": [0.1, -1.0]}), ValueError, "learning_rate must be"),
    (dict(grid={"activations": ["tanh", "softmax"]}), ValueError, "softmax"),
    (dict(learning_rat=0.1), TypeError, "unexpected keyword"),
    (dict(grid=[("seed", [0])]), TypeError, "grid must be a dict"),
])
def test_bad_grids_are_refused_at_once(kwargs, error, message):
    with pytest.raises(error, match=message):
        fastbp.Sweep(SIZES, **kwargs)


def test_bad_data_is_refused_before_training():
    X, y = data(10, 3, 4, seed=8, labels=True)
    sweep = fastbp.Sweep(SIZES, grid={"seed": [0, 1]}, **FIXED)
    with pytest.raises(ValueError, match="columns"):
        sweep.fit(X[:, :2], y)
    with pytest.raises(ValueError, match="labels"):
        sweep.fit(X, y[:5])
    with pytest.raises(ValueError, match="validation_data"):
        sweep.fit(X, y, validation_data=X)


def test_dask_cluster_gives_the_local_result():
    distributed = pytest.importorskip("distributed")
    X, y = data(40, 3, 4, seed=9, labels=True)
    sweep = fastbp.Sweep(SIZES, grid={"learning_rate": [0.05, 0.1], "seed": [0, 1, 2]},
                         schedule="minibatch", batch_size=8, **FIXED)
    local = sweep.fit(X, y, epochs=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = sweep.fit(X, y, epochs=2, client=client, chunk_size=2)
    assert remote.settings == local.settings
    for a, b, ha, hb in zip(remote.networks, local.networks, remote.history, local.history):
        np.testing.assert_array_equal(a.params, b.params)
        assert ha.loss == hb.loss


# -- grids of any size: checked cheaply, trained in chunks that fit, refused when they cannot

def test_a_million_model_grid_is_checked_without_building_its_models(monkeypatch):
    made = []
    real = fastbp.Network.__init__
    monkeypatch.setattr(fastbp.Network, "__init__",
                        lambda self, *a, **k: (made.append(1), real(self, *a, **k))[1])
    grid = {"learning_rate": [0.01 * (k + 1) for k in range(100)], "seed": list(range(100)),
            "momentum": [0.0, 0.5, 0.9], "l2": [0.0, 1e-4, 1e-3, 1e-2] * 25}
    sweep = fastbp.Sweep(SIZES, grid=grid, **FIXED)
    assert len(sweep.settings) == 100 * 100 * 3 * 100 == 3_000_000
    assert not made, "no model's network is built (nor its weights drawn) to check a grid"
    import itertools
    k = 1_234_567
    want = next(itertools.islice(itertools.product(*grid.values()), k, None))
    assert sweep.settings[k] == dict(zip(grid, want))
    assert sweep.settings[-1] == {key: v[-1] for key, v in grid.items()}
    assert len(sweep._groups()) == 1


@pytest.mark.parametrize("grid, fixed, match", [
    ({"learning_rate": [0.1] * 1000 + [-1.0]}, {}, "learning_rate"),
    ({"momentum": [0.0, 0.9], "nesterov": [False, True]}, {}, "nesterov"),
    ({"optimizer": ["sgd", "adam"], "momentum": [0.0, 0.5]}, {}, "momentum"),
    ({"seed": list(range(500)) + [-3]}, {}, "seed"),
    ({"layer_sizes": [[3, 4], [3, 6, 4]]}, {"activations": ["tanh", "softmax"]}, "activations"),
])
def test_any_bad_value_of_a_grid_fails_before_training(grid, fixed, match):
    kw = dict(FIXED, **fixed)
    sizes = None if "layer_sizes" in grid else SIZES
    with pytest.raises((ValueError, TypeError), match=match):
        fastbp.Sweep(sizes, grid=grid, **kw)


def test_models_train_in_chunks_that_fit_with_the_same_result(monkeypatch):
    from fastbp import sweep as sweep_module
    X, y = data(30, 3, 4, seed=11, labels=True)
    sweep = fastbp.Sweep(SIZES, grid={"learning_rate": [0.05, 0.1, 0.2], "seed": [0, 1, 2]},
                         schedule="minibatch", batch_size=8, **FIXED)
    whole = sweep.fit(X, y, epochs=2)
    by_two = sweep.fit(X, y, epochs=2, chunk_size=2)
    # Memory for the arrays of about three models at a time: the plan cuts the group.
    per_model = sweep_module._model_bytes(*sweep._model(sweep.settings[0], allocate=False),
                                          30)[1]
    monkeypatch.setattr(sweep_module, "_available_memory", lambda: 1 << 30)
    monkeypatch.setattr(sweep_module, "_WORKSPACE_SHARE", 3.5 * per_model / (1 << 30))
    plan = sweep._plan(sweep._groups(), 30, None)
    assert [len(c) for c in plan] == [3, 3, 3]
    small = sweep.fit(X, y, epochs=2)
    for run in (by_two, small):
        for a, b, ha, hb in zip(run.networks, whole.networks, run.history, whole.history):
            np.testing.assert_array_equal(a.params, b.params)
            assert ha.loss == hb.loss


def test_a_sweep_that_cannot_fit_in_memory_is_refused_naming_the_size(monkeypatch):
    from fastbp import sweep as sweep_module
    monkeypatch.setattr(sweep_module, "_available_memory", lambda: 50 << 20)
    X, y = data(10, 3, 4, seed=12, labels=True)
    sweep = fastbp.Sweep([3, 400, 4], grid={"seed": list(range(5000))}, **FIXED)
    with pytest.raises(MemoryError, match=r"5,000 models would keep 2[0-9.]+ MiB .* 50.0 MiB"):
        sweep.fit(X, y, epochs=1)


def test_ctrl_c_keeps_every_finished_epoch_on_the_exception(monkeypatch, default_sigint):
    """SIGINT in the middle of an epoch's compiled call: the sweep stops after that epoch
    and the exception's result holds every model as it was then, each equal to a fit of
    that many epochs."""
    import signal
    from fastbp.kernels import loop
    X, y = data(40, 3, 4, seed=13, labels=True)
    calls = []
    real = loop.sweep_epoch

    def interrupted_epoch(*args):
        active = args[13]
        calls.append(active.any())  # the first call, on no model, only compiles
        if sum(calls) == 3:
            signal.raise_signal(signal.SIGINT)  # arrives while the third epoch runs
        return real(*args)

    monkeypatch.setattr(loop, "sweep_epoch", interrupted_epoch)
    grid = {"learning_rate": [0.05, 0.1], "seed": [0, 1]}
    sweep = fastbp.Sweep(SIZES, grid=grid, schedule="minibatch", batch_size=8, **FIXED)
    with pytest.raises(KeyboardInterrupt) as info:
        sweep.fit(X, y, epochs=10)
    result = info.value.result
    assert len(result) == 4
    for i, setting in enumerate(result.settings):
        history = result.history[i]
        assert history.interrupted and history.epochs == 3
        net, single = _single(setting, dict(FIXED, schedule="minibatch", batch_size=8), X, y, 3)
        np.testing.assert_array_equal(result.networks[i].params, net.params)
        assert history.loss == single.loss


def test_a_closed_dask_client_is_named():
    distributed = pytest.importorskip("distributed")
    X, y = data(10, 3, 4, seed=14, labels=True)
    sweep = fastbp.Sweep(SIZES, grid={"seed": [0, 1]}, **FIXED)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        client = distributed.Client(cluster)
        client.close()
        with pytest.raises(RuntimeError, match="client is closed"):
            sweep.fit(X, y, epochs=1, client=client)


def test_workers_without_fastbp_fail_at_once_naming_the_cause():
    import pathlib
    distributed = pytest.importorskip("distributed")
    X, y = data(10, 3, 4, seed=15, labels=True)
    sweep = fastbp.Sweep(SIZES, grid={"seed": [0, 1]}, **FIXED)
    blocker = str(pathlib.Path(__file__).parent / "data" / "dask_worker_without_fastbp.py")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None, preload=[blocker]) as cluster, \
            distributed.Client(cluster) as client:
        with pytest.raises(RuntimeError, match="cannot run fastbp .*ModuleNotFoundError.No module named 'fastbp'"):
            sweep.fit(X, y, epochs=1, client=client)


def test_a_cluster_that_loses_its_workers_fails_in_bounded_time(monkeypatch):
    from fastbp import _cluster
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(_cluster, "WORKERS_LOST_S", 1.0)
    X, y = data(10, 3, 4, seed=16, labels=True)
    sweep = fastbp.Sweep(SIZES, grid={"seed": [0, 1]}, **FIXED)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        real_map = client.map

        def lose_workers_then_map(*args, **kw):
            # Every worker gone after the sweep checked the cluster and before its tasks
            # reach one (retiring after map raced a worker that finished them first).
            client.retire_workers(close_workers=True)
            return real_map(*args, **kw)

        monkeypatch.setattr(client, "map", lose_workers_then_map)
        with pytest.raises(RuntimeError, match="no workers for 1 s"):
            sweep.fit(X, y, epochs=1, client=client)
