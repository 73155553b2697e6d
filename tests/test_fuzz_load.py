"""Network.load and Trainer.load over mutated files: a ValueError naming the file, or
exactly the numbers that were saved -- never another exception, a crash or a huge
allocation (issue 13, items 7 and 10)."""
import json

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastbp  # noqa: E402

from ._util import data  # noqa: E402

FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    X, Y = data(20, 3, 2, seed=2)
    net = fastbp.Network([3, 4, 2], activations=["tanh", "sigmoid"], dtype="float64", seed=0)
    trainer = fastbp.Trainer(net, optimizer="adam", lr_schedule="plateau:patience=2", seed=1)
    trainer.fit(X, Y, epochs=3)
    path = folder / "trainer.npz"
    trainer.save(path)
    compressed = folder / "compressed.npz"
    with np.load(path) as f:
        np.savez_compressed(compressed, **{k: f[k] for k in f.files})
    return _Saved(folder, trainer, path.read_bytes(), compressed.read_bytes())


class _Saved(tuple):
    """(folder, trainer, stored bytes, compressed bytes), with a short repr for reports."""

    def __new__(cls, *items):
        return super().__new__(cls, items)

    def __repr__(self):
        return "<saved trainer files>"


def _same(loaded, trainer, replaced=None):
    """Every number as saved -- but for an entry replaced by another sound value (an
    update count of 0 is as valid as 3), which must then be what was loaded."""
    np.testing.assert_array_equal(loaded.net.params, trainer.net.params)
    assert loaded.net.layer_sizes == trainer.net.layer_sizes
    assert loaded.net.activations == trainer.net.activations
    assert loaded.net.loss_name == trainer.net.loss_name and loaded.net.dtype == trainer.net.dtype
    np.testing.assert_array_equal(loaded.state, trainer.state)
    if replaced is not None and replaced[0] == "trainer_steps":
        assert loaded.steps[0] == int(np.asarray(replaced[1]).reshape(-1)[0]) >= 0
    else:
        assert loaded.steps[0] == trainer.steps[0]
    assert loaded.epoch == trainer.epoch
    assert loaded.monitored == trainer.monitored
    assert loaded.rng.bit_generator.state == trainer.rng.bit_generator.state
    assert loaded.lr_schedule.to_dict() == trainer.lr_schedule.to_dict()
    for key in ("schedule", "batch_size", "learning_rate", "optimizer", "betas", "eps"):
        assert getattr(loaded, key) == getattr(trainer, key), key


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("set"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
)


def _mutate(blob, mutations):
    blob = bytearray(blob)
    for kind, where, value in mutations:
        if not blob:
            break
        i = where % len(blob)
        if kind == "flip":
            blob[i] ^= value
        elif kind == "set":
            blob[i] = value
        elif kind == "cut":
            del blob[i:]
        else:
            blob.insert(i, value)
    return bytes(blob)


@pytest.mark.parametrize("which", ["stored", "compressed"])
@FUZZ
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_files_load_identically_or_raise_value_error(saved, which, mutations):
    folder, trainer, stored, compressed = saved
    path = folder / f"mutated-{which}.npz"
    path.write_bytes(_mutate(stored if which == "stored" else compressed, mutations))
    try:
        loaded = fastbp.Trainer.load(path)
    except ValueError as exc:
        assert str(path) in str(exc)
    else:
        _same(loaded, trainer)
    try:
        net = fastbp.Network.load(path)
    except ValueError as exc:
        assert str(path) in str(exc)
    else:
        np.testing.assert_array_equal(net.params, trainer.net.params)


# Entries replaced by other values (well-formed .npz files with wrong contents).
ODD_VALUES = st.one_of(
    st.integers(-2**70, 2**70).map(lambda v: np.array(str(v) if abs(v) > 2**62 else v)),
    st.floats(allow_nan=True, allow_infinity=True).map(np.array),
    st.lists(st.integers(-5, 2**40), max_size=4).map(lambda v: np.array(v, np.int64)),
    st.lists(st.floats(-1e3, 1e3), max_size=4).map(np.array),
    st.text(max_size=20).map(np.array),
    st.sampled_from([np.array(True), np.zeros((2, 2)), np.array([[3, 4], [2, 1]]),
                     np.array('{"name": "plateau", "patience": -1}'),
                     np.array('{"bit_generator": "PCG64", "state": 5}'),
                     np.array("[]"), np.array("{}"), np.array("nan"), np.zeros(0)]),
)
KEYS = ["format", "version", "sizes", "activations", "loss", "dtype", "bias", "params",
        "trainer_settings", "trainer_state", "trainer_steps", "trainer_epoch",
        "trainer_monitored", "trainer_rng"]


@FUZZ
@given(key=st.sampled_from(KEYS), value=st.one_of(ODD_VALUES, st.none()))
def test_odd_entries_load_identically_or_raise_value_error(saved, key, value):
    folder, trainer, stored, _ = saved
    path = folder / "odd.npz"
    src = folder / "trainer.npz"
    with np.load(src) as f:
        state = {k: f[k] for k in f.files}
    if value is None:
        del state[key]
    else:
        state[key] = value
    np.savez(path, **state)
    try:
        loaded = fastbp.Trainer.load(path)
    except ValueError as exc:
        assert str(path) in str(exc)
    else:
        _same(loaded, trainer, None if value is None else (key, value))


def test_settings_that_are_json_but_not_settings(saved):
    folder, trainer, _, _ = saved
    with np.load(folder / "trainer.npz") as f:
        state = {k: f[k] for k in f.files}
    good = json.loads(str(state["trainer_settings"]))
    for bad in ({**good, "batch_size": 2.5}, {**good, "learning_rate": float("nan")},
                {**good, "unknown": 1}, {**good, "lr_schedule": {"name": "nope"}},
                {**good, "lr_schedule": "plateau"}, {**good, "threads": -1}, [good], "x"):
        state["trainer_settings"] = np.array(json.dumps(bad))
        np.savez(folder / "settings.npz", **state)
        with pytest.raises(ValueError, match="settings.npz is not a valid fastbp trainer"):
            fastbp.Trainer.load(folder / "settings.npz")
