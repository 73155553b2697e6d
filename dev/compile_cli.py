"""Cold start of `fastbp train --epochs 1`: per-function Numba compile times (empty cache).
python dev/compile_cli.py [fastbp train options]"""
import os
import sys
import tempfile
import time

os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp()
start = time.perf_counter()
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
        rows.append((disp.py_func.__module__.split(".")[-1] + "." + disp.py_func.__name__,
                     dt, dt - child, not stack))


event.register("numba:compile", Listener())
from fastbp.cli import main  # noqa: E402

main(["train", "--epochs", "1", "--quiet", *sys.argv[1:]])
total = time.perf_counter() - start
print(f"process: {total:.2f} s; compiling: {sum(r[1] for r in rows if r[3]):.2f} s")
for name, incl, excl, top in sorted(rows, key=lambda r: -r[2])[:25]:
    print(f"{name:45s} {incl:7.2f} {excl:7.2f} {'top' if top else ''}")
