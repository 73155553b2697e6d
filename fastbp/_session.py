"""How a fit runs on a backend: the arrays of one fit where the kernels want them and its
epochs in compiled calls (``Session``), the thread count a fit gets (``auto_threads``,
``_threads``) and the points where Ctrl-C may stop it. ``Trainer`` (trainer.py) decides
what to train; this module runs it."""
import contextlib
import os
import signal
import threading
import time

import numpy as np

from fastbp import _parallel
from fastbp.kernels import codes

# Samples per compiled call within an epoch (rounded to whole batches): progress updates
# and the divergence check happen at this granularity, never per sample.
_SAMPLES_PER_CALL = 1 << 16
# threads=None (auto_threads): below this many multiply-adds per piece of a batch (rows x
# the widest layer's in x out) one thread; from it, the cores that are not busy.
AUTO_MIN_WORK = 1 << 21


def auto_threads(batch_rows, sizes):
    """The thread count ``threads=None`` gives a fit: 1 when a batch is too small for
    threads to pay (fewer than AUTO_MIN_WORK multiply-adds per piece of at most 256 rows in
    the widest layer), else Numba's thread count, less the cores other processes keep busy
    (the 1-minute load average less one for this process's own running thread), at least
    1. Results never depend on it."""
    _parallel.ensure_layer()
    import numba
    avail = numba.get_num_threads()
    sizes = [int(d) for d in sizes]
    work = min(int(batch_rows), 256) * max(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if avail < 2 or work < AUTO_MIN_WORK:
        return 1
    try:
        busy = max(0, int(os.getloadavg()[0] - 1 + 0.5))  # the load this process adds: 1
    except (AttributeError, OSError):
        busy = 0
    return max(1, min(avail, (os.cpu_count() or avail) - busy))


class Session:
    """The arrays of one ``fit`` or ``step``, where the backend's kernels want them (on the
    GPU for cuda): data, parameters, optimizer state and workspaces, allocated once."""

    def __init__(self, trainer, X, Y, sw, batch_size):
        self.trainer, self.net, self.kernels = trainer, trainer.net, trainer.kernels
        k, net = self.kernels, self.net
        self.batch_size = batch_size
        self.X, self.Y, self.SW = k.to_device(X), k.to_device(Y), k.to_device(sw)
        self.params, self.state = k.to_device(net.params), k.to_device(trainer.state)
        self.steps = k.to_device(trainer.steps)
        self.hyper = trainer.hyperparameters()
        self.sizes = np.array(net.layer_sizes, np.int64)  # writable: one kernel specialization
        self.threads = (trainer.threads if trainer.threads is not None
                        else auto_threads(k.workspace_rows(batch_size), self.sizes))
        units = int(self.sizes.sum())
        rows = k.workspace_rows(batch_size)
        self.A = k.empty(rows * units, net.dtype)     # activations of a batch (or a piece)
        self.Dl = k.empty(rows * units, net.dtype)    # deltas, same layout
        self.cost = k.empty(rows, np.float64)         # per-sample costs
        self.Yb = k.empty((rows, Y.shape[1]), net.dtype)
        self.Sb = k.empty(rows if len(sw) else 0, net.dtype)  # weights of a batch's rows
        self.grad = k.empty(net.params.shape, net.dtype)
        self.stats = k.empty(4, np.float64)
        self.stats_host = np.zeros(4)
        self.check_interrupt = _no_interrupt
        self._compiled = set()

    def compile(self, epochs_per_call=False):
        """Compile, or load from Numba's cache, the kernels that run() (or, with
        epochs_per_call, run_epochs()) will call, before anything is timed: History.seconds
        is training alone. Once per session and kind of call; backends that compile
        nothing ahead (vectorized, cuda) have no ``compile_for``."""
        k, net, tr = self.kernels, self.net, self.trainer
        if epochs_per_call in self._compiled or not hasattr(k, "compile_for"):
            return
        self._compiled.add(epochs_per_call)
        with numba_threads(self.threads), _parallel.parallel_guard():
            k.compile_for(self.params, self.state, self.steps, self.grad, self.A, self.Dl,
                          self.cost, self.Yb, self.Sb, self.X, self.Y, self.SW,
                          self.batch_size, self.sizes, net.act_codes, net.loss_code,
                          codes.OPTIMIZERS[tr.optimizer], self.hyper, net.bias, tr.rng,
                          tr.shuffle, epochs_per_call)

    def _sync(self):
        """Bring parameters and optimizer state back into the Network and the Trainer."""
        self.kernels.to_host(self.params, self.net.params)
        self.kernels.to_host(self.state, self.trainer.state)
        self.kernels.to_host(self.steps, self.trainer.steps)

    def run(self, order, on_chunk=None, snapshot=None):
        """Train over the samples in ``order`` (int64); return (sum of the weighted costs,
        sum of the weights seen) -- without weights, (sum of costs, samples seen).

        The work goes to the kernels in calls of about _SAMPLES_PER_CALL samples (whole
        batches); after each the parameters come back to the host, where divergence is
        checked. Raises FloatingPointError if a cost or a parameter is not finite, with
        parameters, optimizer state and update count put back where the call started
        (``snapshot``: the (params, state, steps, ...) to put back, taken here if None).
        """
        if snapshot is None:
            snapshot = self.net.params.copy(), self.trainer.state.copy(), self.trainer.steps.copy()
        with numba_threads(self.threads), _parallel.parallel_guard():
            return self._run(order, on_chunk, snapshot)

    def _run(self, order, on_chunk, snapshot):
        k, net, tr = self.kernels, self.net, self.trainer
        per_call = max(1, _SAMPLES_PER_CALL // self.batch_size) * self.batch_size
        total, seen, weight = 0.0, 0, 0.0
        for start in range(0, len(order), per_call):
            k.train_epoch(self.params, self.state, self.steps, self.grad, self.A, self.Dl,
                          self.cost, self.Yb, self.Sb, self.X, self.Y, self.SW,
                          k.to_device(order[start:start + per_call]), self.batch_size,
                          self.sizes, net.act_codes, net.loss_code,
                          codes.OPTIMIZERS[tr.optimizer], self.hyper, net.bias, self.stats)
            stats = k.to_host(self.stats, self.stats_host)
            self._sync()
            total += stats[0]
            seen += int(stats[1])
            weight += stats[3]
            if stats[2] or not np.isfinite(net.params).all():
                self._roll_back(snapshot)
                raise FloatingPointError(
                    f"the loss is not finite after {seen} samples; "
                    "training diverged (try a smaller learning_rate)")
            if on_chunk is not None:
                on_chunk(int(stats[1]), total / weight if weight else 0.0)
            if start + per_call < len(order):
                try:  # Ctrl-C within an epoch: back to its start, so nothing is half-recorded
                    self.check_interrupt()
                except KeyboardInterrupt:
                    self._roll_back(snapshot)
                    raise
        return float(total), float(weight)

    def _roll_back(self, snapshot):
        """Parameters, optimizer state and update count back to the snapshot's, on the host
        and on the backend."""
        k, net, tr = self.kernels, self.net, self.trainer
        net.params[...], tr.state[...], tr.steps[...] = snapshot[:3]
        self.params = k.to_device(net.params)
        self.state, self.steps = k.to_device(tr.state), k.to_device(tr.steps)


    @property
    def runs_epochs(self):
        """Whether the backend can run many epochs in one compiled call (run_epochs)."""
        return hasattr(self.kernels, "train_epochs")

    def run_epochs(self, rates):
        """len(rates) epochs in one compiled call (kernels.train_epochs), shuffling with the
        trainer's generator; returns (sums of weighted costs, sums of weights) per epoch,
        (epochs,) float64 each, and the seconds per epoch (the call's share, compiling
        excluded) -- bit for bit what epoch-by-epoch ``run`` calls give. If an epoch diverges, puts parameters, optimizer state, update count
        and generator back where the call started and returns None: the caller replays
        those epochs one by one, and so diverges exactly as epoch-by-epoch training does.
        """
        k, net, tr = self.kernels, self.net, self.trainer
        snapshot = (net.params.copy(), tr.state.copy(), tr.steps.copy(),
                    tr.rng.bit_generator.state)
        history = np.zeros((len(rates), 4))
        order = np.empty(self.X.shape[0], np.int64)
        self.compile(epochs_per_call=True)
        started = time.perf_counter()
        with numba_threads(self.threads), _parallel.parallel_guard():
            done = k.train_epochs(self.params, self.state, self.steps, self.grad, self.A,
                                  self.Dl, self.cost, self.Yb, self.Sb, self.X, self.Y, self.SW,
                                  order, tr.rng, tr.shuffle, np.asarray(rates, np.float64),
                                  self.batch_size, self.sizes, net.act_codes, net.loss_code,
                                  codes.OPTIMIZERS[tr.optimizer], self.hyper, net.bias, history)
        seconds = (time.perf_counter() - started) / done
        self._sync()
        last = history[done - 1]
        if last[2] or not np.isfinite(net.params).all():
            net.params[...], tr.state[...], tr.steps[...], tr.rng.bit_generator.state = snapshot
            return None
        return history[:done, 0].copy(), history[:done, 3].copy(), seconds


def _no_interrupt():
    pass


@contextlib.contextmanager
def interrupts_at_safe_points():
    """Ctrl-C during a fit raises KeyboardInterrupt only where the network, the trainer's
    counts and the History agree (the ``check`` this yields): never between a compiled
    call and the recording of what it did. Compiled code does not see signals anyway, so
    this costs no responsiveness. Only from the main thread, and only where SIGINT has
    Python's default handler."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield _no_interrupt
        return
    hits = []

    def check():
        if hits:
            hits.clear()
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, lambda signum, frame: hits.append(signum))
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)
    check()


@contextlib.contextmanager
def numba_threads(count):
    """Numba's thread count for the calling thread set to ``count`` (None: left as it is;
    a Trainer passes its own, or auto_threads's, count)."""
    if count is None:
        yield
        return
    _parallel.ensure_layer()
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)
