"""Many epochs in one compiled call (loop.train_epochs) end exactly where epoch-by-epoch
training ends: same parameters, optimizer state, update count, losses and generator."""
import numpy as np
import pytest

import fastbp
from fastbp._session import Session

from ._util import data

CASES = [("online", 1, "sgd", {}), ("online", 1, "sgd", dict(momentum=0.9, nesterov=True)),
         ("minibatch", 5, "sgd", dict(momentum=0.5, l2=0.01)), ("minibatch", 4, "adam", {}),
         ("fullbatch", 1, "rprop", {}), ("online", 1, "adam", {})]


def _trainer(schedule, batch_size, optimizer, options, dtype, shuffle=True):
    net = fastbp.Network([3, 6, 5, 4], activations=["tanh", "sigmoid", "softmax"],
                         loss="cross_entropy", dtype=dtype, seed=0)
    return fastbp.Trainer(net, schedule=schedule, batch_size=batch_size, optimizer=optimizer,
                          learning_rate=0.05, seed=4, shuffle=shuffle, **options)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("schedule,batch_size,optimizer,options", CASES)
def test_one_call_equals_epoch_by_epoch(schedule, batch_size, optimizer, options, weighted,
                                        dtype):
    X, labels = data(23, 3, 4, seed=1, dtype=dtype, labels=True)
    sw = (np.random.default_rng(2).uniform(0, 2, 23).astype(dtype) if weighted
          else np.empty(0, dtype))
    rates = [0.05, 0.04, 0.03, 0.05]
    runs = []
    for one_call in (False, True):
        tr = _trainer(schedule, batch_size, optimizer, options, dtype)
        Y = tr.net.as_targets(labels, 23)
        session = Session(tr, X, Y, sw, tr.batch_rows(23))
        if one_call:
            totals, weights, _ = session.run_epochs(rates)
            results = list(zip(totals.tolist(), weights.tolist()))
        else:
            results = []
            for lr in rates:
                session.hyper[0] = lr
                results.append(session.run(tr.rng.permutation(23).astype(np.int64))[:2])
        runs.append((tr, [r[:2] for r in results]))
    (step, losses), (fast, fast_losses) = runs
    np.testing.assert_array_equal(fast.net.params, step.net.params)
    np.testing.assert_array_equal(fast.state, step.state)
    assert fast.steps[0] == step.steps[0]
    assert fast_losses == losses
    assert fast.rng.bit_generator.state == step.rng.bit_generator.state


def test_divergence_puts_everything_back_for_a_replay():
    X, Y = data(20, 3, 4, seed=3)
    net = fastbp.Network([3, 4], activations="identity", dtype="float64", seed=0)
    tr = fastbp.Trainer(net, schedule="online", learning_rate=50.0, seed=1)
    session = Session(tr, X, Y * 1e3, np.empty(0), 1)
    before = net.params.copy(), tr.rng.bit_generator.state
    assert session.run_epochs([50.0] * 5) is None
    np.testing.assert_array_equal(net.params, before[0])
    assert tr.rng.bit_generator.state == before[1] and tr.steps[0] == 0


def test_rates_ahead_take_a_schedules_rates_where_it_has_them_and_rate_otherwise():
    from fastbp._fit_loop import rates_ahead
    from fastbp.schedules import Constant

    assert Constant().rates(4, 3, 0.25).tolist() == [Constant().rate(4 + i, 0.25, [])
                                                    for i in range(3)]
    assert Constant().rates(0, 2, 1).dtype == np.float64

    class Halving:  # its rates() answers with the wrong length: rate() is asked instead
        needs_losses = False

        def rate(self, epoch, lr0, losses):
            return lr0 / 2 ** epoch

        def rates(self, first_epoch, count, lr0):
            return np.full(count + 1, lr0)

        def to_dict(self):
            return {"name": "constant"}

    tr = fastbp.Trainer(fastbp.Network([2, 3, 1], seed=0), learning_rate=0.8,
                        lr_schedule=Halving())
    assert rates_ahead(tr, 3).tolist() == [0.8, 0.4, 0.2]
    tr.lr_schedule = Constant()
    assert rates_ahead(tr, 3).tolist() == [0.8, 0.8, 0.8]
