"""Trainer: online, mini-batch and full-batch gradient descent over a Network."""
import contextlib
import json
import math
import time
from dataclasses import dataclass, field

import numpy as np

from fastbp import _validate, backends, schedules
from fastbp.kernels import codes
from fastbp.network import Network, _read_npz, _write_npz

SCHEDULES = ("online", "minibatch", "fullbatch")


def _pair(name, value, low, high):
    """Two finite numbers > low (and < high if given)."""
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers; got {value!r}") from None
    return (_validate.real(name, a, low, False, high), _validate.real(name, b, low, False, high))


# Samples per compiled call within an epoch (rounded to whole batches): progress updates
# and the divergence snapshot happen at this granularity, never per sample.
_SAMPLES_PER_CALL = 1 << 16


@dataclass
class History:
    """What ``Trainer.fit`` records, one entry per epoch.

    loss : mean per-sample cost of the samples seen in the epoch, each computed in the
        forward pass that produced its gradient (no L2 term).
    val_loss : mean per-sample cost on ``validation_data`` after the epoch (empty without it).
    seconds : wall time of each epoch's training, validation excluded.
    learning_rate : the rate the lr_schedule gave each epoch.
    best_epoch : index of the epoch with the lowest monitored loss (val_loss if given).
    stopped_early : True when early stopping or the callback ended training.
    diverged : True when training stopped because the loss was no longer finite (in a
        Sweep; Trainer.fit raises FloatingPointError instead).
    """

    loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    learning_rate: list = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    diverged: bool = False

    @property
    def epochs(self):
        return len(self.loss)


class Trainer:
    """Gradient descent on a :class:`~fastbp.Network` with one of three update schedules.

    Parameters
    ----------
    net : Network
        Trained in place.
    schedule : {"online", "minibatch", "fullbatch"}, default "minibatch"
        ``online``: one update per sample; ``minibatch``: one per ``batch_size`` samples
        (the last batch may be smaller); ``fullbatch``: one per epoch.
    batch_size : int, default 32
        Used by ``minibatch`` only.
    learning_rate : float, default 0.1
        Step size, > 0.
    momentum : float, default 0.0
        Classical momentum in [0, 1), as ``torch.optim.SGD``: ``v <- momentum * v + g``,
        ``w <- w - learning_rate * v``.
    nesterov : bool, default False
        Nesterov momentum (``w <- w - learning_rate * (g + momentum * v)``); needs momentum > 0.
    l2 : float, default 0.0
        L2 penalty ``(l2 / 2) * sum W**2`` on the weights (not the biases); adds ``l2 * W``
        to the weight gradient.
    shuffle : bool, default True
        Visit the samples in a new random order every epoch.
    seed : int or None
        Seeds the shuffling: the same seed and initial weights give bit-identical results.
    backend : {"loop", "vectorized", "cuda"}, default "loop"
        ``loop`` runs every epoch inside compiled code, whatever the schedule.
    optimizer : {"sgd", "adam", "rprop"}, default "sgd"
        How each update uses the gradient g (L2 term included), per parameter, as
        ``torch.optim`` computes it: ``sgd`` steps ``learning_rate * g`` (with momentum
        if set); ``adam`` scales the step per connection by running moments of g
        (``betas``, ``eps``); ``rprop`` (iRprop-, FANN's default for full-batch training)
        uses only the sign of g, with a step size per connection that grows by
        ``etas[1]`` while the sign holds and shrinks by ``etas[0]`` when it flips,
        within ``step_sizes``; ``learning_rate`` is its initial step size.
    betas, eps : Adam's moment decay rates (default (0.9, 0.999)) and denominator term (1e-8).
    etas, step_sizes : RPROP's (decrease, increase) factors (default (0.5, 1.2)) and
        (smallest, largest) step size (default (1e-6, 50)).
    lr_schedule : None, str or schedule, default None (constant)
        How the learning rate changes per epoch: an object from :mod:`fastbp.schedules`
        (``InverseScaling``, ``StepDecay``, ``ReduceOnPlateau``) or its text form, such
        as ``"invscaling:decay=0.1,power=0.5"`` or ``"plateau:factor=0.5,patience=3"``.
    threads : int or None, default None
        CPU threads the ``loop`` kernels may use (Numba's thread count, set for this
        trainer's calls only). None: all of Numba's threads. Results do not depend on it.

    Attributes
    ----------
    state : ndarray (2, P)
        Optimizer state laid out like ``net.params`` (SGD: velocity in row 0; Adam: first
        and second moments; RPROP: previous gradient and step sizes). Kept across
        ``fit`` and ``step`` calls and stored by :meth:`save`.
    epoch : int
        Epochs trained so far by this trainer, across ``fit`` calls (drives lr_schedule).
    """

    def __init__(self, net, schedule="minibatch", batch_size=32, learning_rate=0.1,
                 momentum=0.0, nesterov=False, l2=0.0, shuffle=True, seed=None,
                 backend="loop", optimizer="sgd", betas=(0.9, 0.999), eps=1e-8,
                 etas=(0.5, 1.2), step_sizes=(1e-6, 50.0), lr_schedule=None, threads=None):
        self.net = net
        self.schedule = _validate.choice("schedule", schedule, SCHEDULES)
        self.batch_size = _validate.positive_int("batch_size", batch_size)
        self.learning_rate = _validate.real("learning_rate", learning_rate, 0.0, False)
        self.optimizer = _validate.choice("optimizer", optimizer, codes.OPTIMIZERS)
        self.momentum = _validate.real("momentum", momentum, 0.0, True, high=1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(f"momentum applies to optimizer='sgd' only; got {optimizer!r}")
        self.l2 = _validate.real("l2", l2, 0.0)
        self.betas = _pair("betas", betas, 0.0, 1.0)
        self.eps = _validate.real("eps", eps, 0.0, False)
        self.etas = _pair("etas", etas, 0.0, None)
        if not self.etas[0] < 1.0 < self.etas[1]:
            raise ValueError(f"etas must be (decrease < 1, increase > 1); got {etas!r}")
        self.step_sizes = _pair("step_sizes", step_sizes, 0.0, None)
        if not self.step_sizes[0] < self.step_sizes[1]:
            raise ValueError(f"step_sizes must be (smallest, largest); got {step_sizes!r}")
        self.lr_schedule = schedules.as_schedule(lr_schedule)
        self.shuffle = bool(shuffle)
        self.backend = backend
        self.threads = _validate.threads(threads)
        self.kernels = backends.get(backend)
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self):
        """Forget the optimizer state and the epoch count (the network is left as it is)."""
        self.state = np.zeros((2, self.net.n_params), self.net.dtype)
        if self.optimizer == "rprop":
            self.state[1] = self.learning_rate  # initial step sizes
        self.steps = np.zeros(1, np.int64)  # updates made (Adam's bias correction)
        self.epoch = 0
        self.monitored = []  # per epoch: val_loss if fit had validation data, else loss

    def __getstate__(self):
        # The kernel module cannot be pickled; it is looked up again from the backend name.
        return {k: v for k, v in vars(self).items() if k != "kernels"}

    def __setstate__(self, state):
        vars(self).update(state)
        vars(self).setdefault("threads", None)  # pickled before the option existed
        _validate.own_arrays(self)
        self.kernels = backends.get(self.backend)

    @property
    def velocity(self):
        """SGD momentum buffer, laid out like ``net.params`` (row 0 of ``state``)."""
        return self.state[0]

    def _hyper(self, lr):
        h = np.zeros(codes.N_HYPER)
        h[codes.H_LR], h[codes.H_MOMENTUM] = lr, self.momentum
        h[codes.H_NESTEROV], h[codes.H_L2] = float(self.nesterov), self.l2
        h[codes.H_BETA1], h[codes.H_BETA2], h[codes.H_EPS] = *self.betas, self.eps
        h[codes.H_ETA_MINUS], h[codes.H_ETA_PLUS] = self.etas
        h[codes.H_STEP_MIN], h[codes.H_STEP_MAX] = self.step_sizes
        return h

    def _batch_size(self, n):
        return {"online": 1, "minibatch": min(self.batch_size, n), "fullbatch": n}[self.schedule]

    def step(self, X, Y, sample_weight=None):
        """Exactly one update from the mean gradient over the rows of X (with
        ``sample_weight``, the weighted mean); returns their (weighted) mean cost."""
        X, _ = self.net._inputs(X)
        Y = self.net._targets(Y, X.shape[0])
        n = X.shape[0]
        sw = _validate.as_sample_weight(sample_weight, n, self.net.dtype)
        total, weight = _Session(self, X, Y, sw, n).run(np.arange(n, dtype=np.int64))
        return total / weight

    def save(self, path):
        """Write the network, this trainer's settings and its full state (optimizer state,
        update and epoch counts, shuffling generator) to ``path`` (``.npz``, atomically),
        so that :meth:`load` resumes training with the same result as never stopping."""
        settings = dict(schedule=self.schedule, batch_size=self.batch_size,
                        learning_rate=self.learning_rate, momentum=self.momentum,
                        nesterov=self.nesterov, l2=self.l2, shuffle=self.shuffle,
                        optimizer=self.optimizer, betas=self.betas, eps=self.eps,
                        etas=self.etas, step_sizes=self.step_sizes,
                        lr_schedule=self.lr_schedule.to_dict(), backend=self.backend,
                        threads=self.threads)
        extra = dict(trainer_settings=np.array(json.dumps(settings)),
                     trainer_state=self.state, trainer_steps=self.steps,
                     trainer_epoch=np.array(self.epoch),
                     trainer_monitored=np.array(self.monitored, np.float64),
                     trainer_rng=np.array(json.dumps(self.rng.bit_generator.state)))
        _write_npz(path, {**self.net._state(), **extra})

    @classmethod
    def load(cls, path, backend=None):
        """A Trainer (with its Network) written by :meth:`save`, ready to resume.

        ``backend`` overrides the saved one. Raises ValueError for a file that is not a
        saved trainer (a file from ``Network.save`` holds no trainer state).
        """
        state = _read_npz(path)
        net = Network._from_state(state, path)
        try:
            settings = json.loads(str(state["trainer_settings"]))
            settings["lr_schedule"] = schedules.from_dict(settings["lr_schedule"])
            if backend is not None:
                settings["backend"] = backend
            trainer = cls(net, **settings)
            if state["trainer_state"].shape != trainer.state.shape:
                raise ValueError("optimizer state does not fit the network")
            trainer.state[...] = state["trainer_state"]
            trainer.steps[...] = state["trainer_steps"]
            trainer.epoch = int(state["trainer_epoch"])
            trainer.monitored = [float(v) for v in state["trainer_monitored"]]
            trainer.rng.bit_generator.state = json.loads(str(state["trainer_rng"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path} is not a valid fastbp trainer file: {exc}") from None
        return trainer

    def fit(self, X, Y, epochs=10, validation_data=None, progress=False, patience=None,
            restore_best=True, callback=None, sample_weight=None):
        """Train for ``epochs`` passes over (X, Y).

        Parameters
        ----------
        X : array_like (n, D[0])
        Y : array_like (n, D[L]), or 1-D integer class labels for a softmax output
        epochs : int
        validation_data : (X_val, Y_val), optional
            Evaluated after every epoch into ``history.val_loss``.
        progress : bool
            Show a tqdm progress bar with the running loss.
        patience : int, optional
            Early stopping: stop after this many epochs without a new best monitored
            loss (``val_loss`` when validation data is given, else ``loss``).
        restore_best : bool, default True
            With ``patience``, put back the weights of the best epoch when stopping.
        callback : callable(epoch, history) -> bool, optional
            Called after every epoch; returning True stops training.
        sample_weight : array_like (n,), optional
            Non-negative weight of each sample: every update follows the weighted mean
            gradient of its batch, sum w_s g_s / sum w_s, and ``history.loss`` is the
            weighted mean cost. (With batches of one sample a weight cancels out, except
            that a sample of weight 0 makes no update.)

        Returns
        -------
        History

        Raises
        ------
        FloatingPointError
            If the loss becomes NaN or infinite; the network keeps its last finite weights.
        """
        net = self.net
        epochs = _validate.positive_int("epochs", epochs)
        if patience is not None:
            patience = _validate.positive_int("patience", patience)
        X, _ = net._inputs(X)
        Y = net._targets(Y, X.shape[0])
        sw = _validate.as_sample_weight(sample_weight, X.shape[0], net.dtype)
        if validation_data is not None:
            try:
                X_val, Y_val = validation_data
            except (TypeError, ValueError):
                raise ValueError("validation_data must be a pair (X_val, Y_val)") from None
            X_val, _ = net._inputs(X_val)
            Y_val = net._targets(Y_val, X_val.shape[0])
        n = X.shape[0]
        batch_size = self._batch_size(n)
        history = History()
        best, best_params = math.inf, None
        session = _Session(self, X, Y, sw, batch_size)
        bar = _progress_bar(epochs * n) if progress else None
        try:
            for epoch in range(epochs):
                order = (self.rng.permutation(n) if self.shuffle else np.arange(n)).astype(np.int64)
                lr = self.lr_schedule.rate(self.epoch, self.learning_rate, self.monitored)
                session.hyper[codes.H_LR] = lr
                history.learning_rate.append(lr)
                started = time.perf_counter()
                on_chunk = None if bar is None else (
                    lambda k, running: (bar.update(k), bar.set_postfix(loss=f"{running:.4g}")))
                try:
                    total, weight = session.run(order, on_chunk)
                except FloatingPointError as exc:
                    raise FloatingPointError(f"epoch {epoch}: {exc}") from None
                history.seconds.append(time.perf_counter() - started)
                history.loss.append(total / weight)
                if validation_data is not None:
                    history.val_loss.append(net.loss(X_val, Y_val, backend=self.backend))
                monitored = (history.val_loss or history.loss)[-1]
                self.epoch += 1
                self.monitored.append(monitored)
                if monitored < best:
                    best, history.best_epoch = monitored, epoch
                    if patience is not None and restore_best:
                        best_params = net.params.copy()
                if bar is not None:
                    bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in
                                     (("loss", history.loss), ("val_loss", history.val_loss)) if v})
                if callback is not None and callback(epoch, history):
                    history.stopped_early = True
                    break
                if patience is not None and epoch - history.best_epoch >= patience:
                    history.stopped_early = True
                    if best_params is not None:
                        net.params[...] = best_params
                    break
        finally:
            if bar is not None:
                bar.close()
        return history


class _Session:
    """The arrays of one ``fit`` or ``step``, where the backend's kernels want them (on the
    GPU for cuda): data, parameters, optimizer state and workspaces, allocated once."""

    def __init__(self, trainer, X, Y, sw, batch_size):
        self.trainer, self.net, self.kernels = trainer, trainer.net, trainer.kernels
        k, net = self.kernels, self.net
        self.batch_size = batch_size
        self.X, self.Y, self.SW = k.to_device(X), k.to_device(Y), k.to_device(sw)
        self.params, self.state = k.to_device(net.params), k.to_device(trainer.state)
        self.steps = k.to_device(trainer.steps)
        self.hyper = trainer._hyper(trainer.learning_rate)
        units = int(net.sizes.sum())
        rows = k.workspace_rows(batch_size)
        self.A = k.empty(rows * units, net.dtype)     # activations of a batch (or a piece)
        self.Dl = k.empty(rows * units, net.dtype)    # deltas, same layout
        self.cost = k.empty(rows, np.float64)         # per-sample costs
        self.Yb = k.empty((rows, Y.shape[1]), net.dtype)
        self.Sb = k.empty(rows if len(sw) else 0, net.dtype)  # weights of a batch's rows
        self.grad = k.empty(net.params.shape, net.dtype)
        self.stats = k.empty(4, np.float64)
        self.stats_host = np.zeros(4)

    def _sync(self):
        """Bring parameters and optimizer state back into the Network and the Trainer."""
        self.kernels.to_host(self.params, self.net.params)
        self.kernels.to_host(self.state, self.trainer.state)
        self.kernels.to_host(self.steps, self.trainer.steps)

    def run(self, order, on_chunk=None):
        """Train over the samples in ``order`` (int64); return (sum of the weighted costs,
        sum of the weights seen) -- without weights, (sum of costs, samples seen).

        The work goes to the kernels in calls of about _SAMPLES_PER_CALL samples (whole
        batches); after each the parameters come back to the host, where divergence is
        checked. Raises FloatingPointError if a cost is not finite, leaving the network
        at its last finite weights.
        """
        with _threads(self.trainer.threads):
            return self._run(order, on_chunk)

    def _run(self, order, on_chunk):
        k, net, tr = self.kernels, self.net, self.trainer
        per_call = max(1, _SAMPLES_PER_CALL // self.batch_size) * self.batch_size
        total, seen, weight = 0.0, 0, 0.0
        for start in range(0, len(order), per_call):
            snapshot = net.params.copy(), tr.state.copy(), tr.steps.copy()
            k.train_epoch(self.params, self.state, self.steps, self.grad, self.A, self.Dl,
                          self.cost, self.Yb, self.Sb, self.X, self.Y, self.SW,
                          k.to_device(order[start:start + per_call]), self.batch_size,
                          net.sizes, net.act_codes, net.loss_code,
                          codes.OPTIMIZERS[tr.optimizer], self.hyper, net.bias, self.stats)
            stats = k.to_host(self.stats, self.stats_host)
            self._sync()
            total += stats[0]
            seen += int(stats[1])
            weight += stats[3]
            finite = np.isfinite(net.params).all()
            if stats[2] or not finite:
                if not finite:
                    net.params[...], tr.state[...], tr.steps[...] = snapshot
                    self.params = k.to_device(net.params)
                    self.state, self.steps = k.to_device(tr.state), k.to_device(tr.steps)
                raise FloatingPointError(
                    f"the loss is not finite after {seen} samples; training diverged "
                    f"(try a smaller learning_rate). The network keeps its last finite "
                    f"weights.")
            if on_chunk is not None:
                on_chunk(int(stats[1]), total / weight if weight else 0.0)
        return float(total), float(weight)


    @property
    def runs_epochs(self):
        """Whether the backend can run many epochs in one compiled call (run_epochs)."""
        return hasattr(self.kernels, "train_epochs")

    def run_epochs(self, rates):
        """len(rates) epochs in one compiled call (kernels.train_epochs), shuffling with the
        trainer's generator; returns [(sum of weighted costs, sum of weights, seconds)] per
        epoch -- the seconds the call's share -- bit for bit what epoch-by-epoch ``run``
        calls give. If an epoch diverges, puts parameters, optimizer state, update count
        and generator back where the call started and returns None: the caller replays
        those epochs one by one, and so diverges exactly as epoch-by-epoch training does.
        """
        k, net, tr = self.kernels, self.net, self.trainer
        snapshot = (net.params.copy(), tr.state.copy(), tr.steps.copy(),
                    tr.rng.bit_generator.state)
        history = np.zeros((len(rates), 4))
        order = np.empty(self.X.shape[0], np.int64)
        started = time.perf_counter()
        with _threads(tr.threads):
            done = k.train_epochs(self.params, self.state, self.steps, self.grad, self.A,
                                  self.Dl, self.cost, self.Yb, self.Sb, self.X, self.Y, self.SW,
                                  order, tr.rng, tr.shuffle, np.asarray(rates, np.float64),
                                  self.batch_size, net.sizes, net.act_codes, net.loss_code,
                                  codes.OPTIMIZERS[tr.optimizer], self.hyper, net.bias, history)
        seconds = (time.perf_counter() - started) / done
        self._sync()
        last = history[done - 1]
        if last[2] or not np.isfinite(net.params).all():
            net.params[...], tr.state[...], tr.steps[...], tr.rng.bit_generator.state = snapshot
            return None
        return [(float(h[0]), float(h[3]), seconds) for h in history[:done]]


@contextlib.contextmanager
def _threads(count):
    """Numba's thread count for the calling thread set to ``count`` (None: left as it is)."""
    if count is None:
        yield
        return
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _progress_bar(total):
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="sample", unit_scale=True, dynamic_ncols=True)
