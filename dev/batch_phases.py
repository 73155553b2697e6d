"""Per-pass time of one batch on the loop backend (forward, output delta, hidden deltas,
gradient, update) for 784-512-512-10 at B=256, at a thread count: where a batch goes.
python dev/batch_phases.py THREADS"""
import time, sys, numpy as np, numba, fastbp
from fastbp import _parallel; _parallel.ensure_layer()
from fastbp.kernels import loop, codes
T = int(sys.argv[1]); numba.set_num_threads(T)
sizes = [784, 512, 512, 10]; n = 256
net = fastbp.Network(sizes, activations=["sigmoid", "sigmoid", "softmax"], loss="cross_entropy", seed=0)
S = np.array(sizes, np.int64); W = sum(sizes); rng = np.random.default_rng(0)
A = np.zeros(n * W, np.float32); Dl = np.zeros(n * W, np.float32); A[:n*784] = rng.random(n*784)
Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]; g = np.zeros_like(net.params)
state = np.zeros((2, net.params.size), np.float32); steps = np.zeros(1, np.int64)
hyper = np.zeros(codes.N_HYPER); hyper[codes.H_LR] = 0.01
sw = np.zeros(0, np.float32); cost = np.zeros(n)
fns = {"forward": lambda: loop.forward(A, net.params, n, S, net.act_codes),
       "out": lambda: loop.output_delta(Dl, A, Y, sw, n, S, net.act_codes, net.loss_code),
       "hidden": lambda: loop.hidden_deltas(Dl, A, net.params, n, S, net.act_codes),
       "grad": lambda: loop.accumulate_gradients(g, Dl, A, n, S),
       "update": lambda: loop.update(net.params, state, steps, g, S, 1/256, 0, hyper, True)}
tot = 0
for k, f in fns.items():
    f(); best = 1e9
    for _ in range(20):
        t = time.perf_counter(); f(); best = min(best, time.perf_counter() - t)
    tot += best
    print(T, k, f"{best*1e3:.3f} ms")
print(T, "total", f"{tot*1e3:.3f} ms")
