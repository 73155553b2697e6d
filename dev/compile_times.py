"""Cold-start compile cost per Numba function: a first `Trainer.fit(epochs=1)` (or, with --cli,
`fastbp train --epochs 1`) with an empty NUMBA_CACHE_DIR, recording numba's "numba:compile"
events: inclusive time (with callees compiled on the way) and exclusive (self) time.
python dev/compile_times.py [--schedule minibatch|online|fullbatch] [--cli]"""
import argparse
import os
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--schedule", default="minibatch")
ap.add_argument("--threads", type=int, default=0, help="NUMBA_NUM_THREADS (0: leave)")
ap.add_argument("--cli", action="store_true", help="time `fastbp train --epochs 1` instead")
args = ap.parse_args()
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp()
t_start = time.perf_counter()

from numba.core import event  # noqa: E402

stack, rows = [], []


class Listener(event.Listener):
    def on_start(self, ev):
        stack.append([ev.data["dispatcher"], time.perf_counter(), 0.0])

    def on_end(self, ev):
        disp, t0, child = stack.pop()
        dt = time.perf_counter() - t0
        if stack:
            stack[-1][2] += dt
        rows.append((disp.py_func.__module__.split(".")[-1] + "." + disp.py_func.__name__, dt, dt - child))


event.register("numba:compile", Listener())
t_imp = time.perf_counter()
import numpy as np  # noqa: E402
import fastbp  # noqa: E402
t_imp = time.perf_counter() - t_imp
X = np.random.default_rng(0).random((200, 64)).astype(np.float32)
y = np.random.default_rng(1).integers(0, 10, 200)
net = fastbp.Network([64, 32, 10], activations=["sigmoid", "softmax"], loss="cross_entropy", seed=0)
t0 = time.perf_counter()
if args.cli:
    from fastbp.cli import main
    main(["train", "--epochs", "1", "--schedule", args.schedule])
else:
    fastbp.Trainer(net, schedule=args.schedule, batch_size=32, seed=0).fit(X, y, epochs=1)
t_fit = time.perf_counter() - t0
print(f"schedule={args.schedule}: import fastbp {t_imp:.2f} s, first fit {t_fit:.2f} s, "
      f"process so far {time.perf_counter() - t_start:.2f} s")
agg = {}
for name, incl, excl in rows:
    a = agg.setdefault(name, [0, 0.0, 0.0])
    a[0] += 1
    a[1] = max(a[1], incl)
    a[2] += excl
print(f"{'function':45s} {'#sigs':>5s} {'incl s':>7s} {'self s':>7s}")
for name, (k, incl, excl) in sorted(agg.items(), key=lambda kv: -kv[1][2]):
    print(f"{name:45s} {k:5d} {incl:7.2f} {excl:7.2f}")
print(f"sum of self times {sum(a[2] for a in agg.values()):.2f} s")
