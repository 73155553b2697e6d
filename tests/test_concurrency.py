"""One Trainer used from two Python threads at once: the second call is refused with a
clear RuntimeError while the first runs, never interleaved into silent corruption."""
import threading

import numpy as np
import pytest

import fastbp

from ._util import data


def _trainer():
    net = fastbp.Network([4, 8, 3], activations=["tanh", "softmax"], loss="cross_entropy",
                         seed=0)
    return fastbp.Trainer(net, schedule="online", learning_rate=0.01, seed=0, threads=1)


@pytest.mark.parametrize("second", ["fit", "step"])
def test_a_second_call_while_fit_runs_raises(second):
    X, y = data(64, 4, 3, seed=1, labels=True)
    trainer = _trainer()
    trainer.fit(X, y, epochs=1)  # compile before the race
    inside, release = threading.Event(), threading.Event()

    def callback(epoch, history):  # holds the fit open until the other call has been made
        inside.set()
        release.wait(30)
        return False

    errors = []
    worker = threading.Thread(target=lambda: errors.append(
        trainer.fit(X, y, epochs=2, callback=callback)))
    worker.start()
    assert inside.wait(30)
    try:
        before = trainer.net.params.copy()
        with pytest.raises(RuntimeError, match="already training"):
            if second == "fit":
                trainer.fit(X, y, epochs=1)
            else:
                trainer.step(X[:4], y[:4])
        np.testing.assert_array_equal(trainer.net.params, before)  # nothing touched
    finally:
        release.set()
        worker.join(30)
    assert trainer.history.epochs == 2
    trainer.fit(X, y, epochs=1)  # free again once the first call has returned


def test_a_callback_cannot_train_its_own_trainer():
    X, y = data(16, 4, 3, seed=2, labels=True)
    trainer = _trainer()
    with pytest.raises(RuntimeError, match="already training"):
        trainer.fit(X, y, epochs=1, callback=lambda e, h: trainer.step(X[:1], y[:1]))


def test_two_threads_fitting_one_trainer_end_as_two_sequential_fits_or_refuse():
    """Without a barrier: whatever the timing, each call either trains alone (so the
    result is that of fits one after another) or raises RuntimeError without training."""
    X, y = data(200, 4, 3, seed=3, labels=True)
    shared, sequential = _trainer(), _trainer()
    shared.fit(X, y, epochs=1)
    sequential.fit(X, y, epochs=1)
    outcomes = []

    def run():
        try:
            shared.fit(X, y, epochs=3)
            outcomes.append("ran")
        except RuntimeError:
            outcomes.append("refused")

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for _ in range(outcomes.count("ran")):
        sequential.fit(X, y, epochs=3)
    np.testing.assert_array_equal(shared.net.params, sequential.net.params)
    assert shared.epoch == sequential.epoch


def test_a_copied_trainer_is_not_locked():
    import copy
    import pickle
    trainer = _trainer()
    X, y = data(8, 4, 3, seed=4, labels=True)
    trainer.fit(X, y, epochs=1)
    for clone in (copy.deepcopy(trainer), pickle.loads(pickle.dumps(trainer))):
        clone.fit(X, y, epochs=1)
