"""Property tests over the public API (issue 13): for any shapes, dtypes, memory layouts,
schedules, optimizers and backends (loop, vectorized), a call either raises a clear error
(ValueError or TypeError naming its argument) with nothing changed, or gives the result of
the reference: the same numbers for the same data in another layout, the vectorized
formulation's numbers up to rounding."""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastbp  # noqa: E402
from fastbp import schedules  # noqa: E402

from ._util import TOLERANCE  # noqa: E402

PROPS = settings(max_examples=100, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])

OUTPUTS = [("sigmoid", "mse"), ("identity", "mse"), ("softmax", "cross_entropy"),
           ("sigmoid", "cross_entropy")]


@st.composite
def problems(draw):
    n_in = draw(st.integers(1, 4))
    hidden = draw(st.lists(st.integers(1, 5), min_size=0, max_size=2))
    output, loss = draw(st.sampled_from(OUTPUTS))
    n_out = draw(st.integers(2 if output == "softmax" else 1, 3))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    n = draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, n_in))
    if output == "softmax":
        Y = rng.integers(0, n_out, n)
    else:
        Y = rng.uniform(0.1, 0.9, (n, n_out))
    hidden_act = draw(st.sampled_from(["tanh", "sigmoid", "relu"]))
    net = dict(layer_sizes=[n_in, *hidden, n_out],
               activations=[hidden_act] * len(hidden) + [output], loss=loss, dtype=dtype,
               seed=seed)
    return net, X, Y


@st.composite
def trainers(draw):
    schedule = draw(st.sampled_from(["online", "minibatch", "fullbatch"]))
    optimizer = draw(st.sampled_from(["sgd", "adam", "rprop"]))
    options = dict(schedule=schedule, optimizer=optimizer,
                   batch_size=draw(st.integers(1, 4)),
                   learning_rate=draw(st.sampled_from([0.01, 0.05])),
                   l2=draw(st.sampled_from([0.0, 0.01])), seed=draw(st.integers(0, 99)),
                   shuffle=draw(st.booleans()),
                   lr_schedule=draw(st.sampled_from(
                       [None, "invscaling:decay=0.5", "step:every=1,gamma=0.5",
                        "plateau:factor=0.5,patience=0"])))
    if optimizer == "sgd" and draw(st.booleans()):
        options.update(momentum=0.5, nesterov=draw(st.booleans()))
    return options


LAYOUTS = ["C", "F", "strided", "int-like", "list", "readonly"]


def _layout(arr, layout):
    arr = np.asarray(arr)
    if layout == "F":
        return np.asfortranarray(arr)
    if layout == "strided":
        wide = np.repeat(arr, 2, axis=0)
        return wide[::2]
    if layout == "list":
        return arr.tolist()
    if layout == "readonly":
        arr = arr.copy()
        arr.setflags(write=False)
        return arr
    return arr


@PROPS
@given(problem=problems(), options=trainers(), layout=st.sampled_from(LAYOUTS),
       epochs=st.integers(1, 3))
def test_any_layout_trains_exactly_like_contiguous_data(problem, options, layout, epochs):
    spec, X, Y = problem
    X = X.astype(spec["dtype"])
    results = []
    for lay in ("C", layout):
        net = fastbp.Network(**spec)
        trainer = fastbp.Trainer(net, **options)
        history = trainer.fit(_layout(X, lay), _layout(Y, lay), epochs=epochs)
        results.append((net.params.copy(), trainer.state.copy(), history.loss))
    np.testing.assert_array_equal(results[1][0], results[0][0])
    np.testing.assert_array_equal(results[1][1], results[0][1])
    assert results[1][2] == results[0][2]


@PROPS
@given(problem=problems(), options=trainers())
def test_loop_matches_the_vectorized_reference(problem, options):
    spec, X, Y = problem
    assume(spec["dtype"] == "float64")  # rounding in float32 grows with RPROP's sign tests
    results = []
    for backend in ("loop", "vectorized"):
        net = fastbp.Network(**spec)
        trainer = fastbp.Trainer(net, backend=backend, **options)
        history = trainer.fit(X, Y, epochs=2)
        results.append((net.params.copy(), history.loss, net.forward(X, backend=backend)))
    tol = TOLERANCE[np.dtype("float64")]
    np.testing.assert_allclose(results[0][0], results[1][0], **tol, err_msg="params")
    np.testing.assert_allclose(results[0][1], results[1][1], **tol, err_msg="history.loss")
    np.testing.assert_allclose(results[0][2], results[1][2], **tol, err_msg="forward")


BAD_INPUTS = st.sampled_from([
    ("nan", ValueError, "X contains NaN"), ("inf", ValueError, "X contains NaN or infinite"),
    ("columns", ValueError, "X has"), ("rows", ValueError, "Y"),
    ("strings", TypeError, "X must hold real numbers"), ("3d", ValueError, "X must be 1-D"),
    ("empty", ValueError, "X has no rows"), ("complex", TypeError, "X must hold real"),
    ("huge", ValueError, "X contains NaN or infinite"),
    ("weights", ValueError, "sample_weight"), ("negative-weights", ValueError, "sample_weight"),
    ("labels", ValueError, "Y"),
])


def _spoil(kind, X, Y):
    X = X.copy()
    sw = None
    if kind == "nan":
        X[0, 0] = np.nan
    elif kind == "inf":
        X[-1, -1] = np.inf
    elif kind == "columns":
        X = np.hstack([X, X])
    elif kind == "rows":
        Y = np.concatenate([Y, Y[:1]])
    elif kind == "strings":
        X = X.astype(str)
    elif kind == "3d":
        X = X[None]
    elif kind == "empty":
        X, Y = X[:0], Y[:0]
    elif kind == "complex":
        X = X + 1j
    elif kind == "huge":
        X[0, 0] = 1e300
    elif kind == "weights":
        sw = np.ones(len(X) + 1)
    elif kind == "negative-weights":
        sw = -np.ones(len(X))
    elif kind == "labels":
        Y = np.full(len(X), 99) if Y.ndim == 1 else Y * 5
    return X, Y, sw


@PROPS
@given(problem=problems(), options=trainers(), bad=BAD_INPUTS,
       backend=st.sampled_from(["loop", "vectorized"]))
def test_bad_input_is_a_clear_error_and_changes_nothing(problem, options, bad, backend):
    spec, X, Y = problem
    kind, error, message = bad
    if kind == "huge":
        assume(spec["dtype"] == "float32")
    if kind == "labels" and Y.ndim == 2 and spec["loss"] == "mse":
        assume(False)  # any real targets are fine for mse
    net = fastbp.Network(**spec)
    trainer = fastbp.Trainer(net, backend=backend, **options)
    Xb, Yb, sw = _spoil(kind, X, Y)
    before = (net.params.copy(), trainer.state.copy(), trainer.steps.copy(),
              trainer.rng.bit_generator.state, trainer.epoch)
    with pytest.raises(error, match=message):
        trainer.fit(Xb, Yb, epochs=2, sample_weight=sw)
    with pytest.raises((ValueError, TypeError)):
        trainer.step(Xb, Yb, sample_weight=sw)
    np.testing.assert_array_equal(net.params, before[0])
    np.testing.assert_array_equal(trainer.state, before[1])
    np.testing.assert_array_equal(trainer.steps, before[2])
    assert trainer.rng.bit_generator.state == before[3] and trainer.epoch == before[4]


@PROPS
@given(name=st.sampled_from(["invscaling", "step", "plateau"]),
       values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                 st.integers(-3, 10)), min_size=1, max_size=3))
def test_schedule_text_is_accepted_sound_or_refused_clearly(name, values):
    keys = {"invscaling": ["decay", "power"], "step": ["every", "gamma"],
            "plateau": ["factor", "patience", "threshold", "min_lr"]}[name]
    text = name + ":" + ",".join(f"{k}={v}" for k, v in zip(keys, values))
    try:
        sched = schedules.parse(text)
    except ValueError:
        return
    losses = [1.0, 0.9, 0.95, 0.97, 0.99, 1.2]
    for epoch in range(6):
        rate = sched.rate(epoch, 0.1, losses)
        assert np.isfinite(rate) and rate >= 0, (text, epoch, rate)
    assert schedules.from_dict(sched.to_dict()).to_dict() == sched.to_dict()


@PROPS
@given(sizes=st.lists(st.one_of(st.integers(-2, 2**70), st.floats(), st.booleans(),
                                st.text(max_size=2)), min_size=0, max_size=4),
       dtype=st.one_of(st.none(), st.sampled_from(["float32", "float16", "int32", "f8", "x"])),
       seed=st.one_of(st.none(), st.integers(-5, 5), st.floats()))
def test_network_arguments_are_accepted_or_refused_clearly(sizes, dtype, seed):
    try:
        net = fastbp.Network(sizes, dtype=dtype, seed=seed)
    except (ValueError, TypeError) as exc:
        assert any(word in str(exc) for word in ("layer_sizes", "dtype", "seed")), str(exc)
        return
    assert net.layer_sizes == [int(d) for d in sizes] and net.n_params < 10**7


@PROPS
@given(problem=problems())
def test_predictions_agree_with_forward(problem):
    spec, X, Y = problem
    net = fastbp.Network(**spec)
    out = net.forward(X)
    if net.is_classifier:
        proba = net.predict_proba(X)
        np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
        assert net.predict(X).shape == (len(X),)
        assert 0.0 <= net.score(X, Y) <= 1.0
    else:
        np.testing.assert_array_equal(net.predict(X), out)
        assert net.score(X, Y) <= 1.0
