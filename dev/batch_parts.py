"""One batch of the loop backend's epoch, part by part, each timed in a compiled loop (best
of 40 runs of 5000 calls): where a small batch goes. 64-32-10, tanh and softmax +
cross-entropy, float32, one thread, the batch's rows already in cache.
python dev/batch_parts.py [BATCH]    (default 16)"""
import sys
import time

import numpy as np
from numba import njit

import fastbp
from fastbp.datasets import load_digits
from fastbp.kernels import codes, loop
from fastbp.kernels.loop_layers import delta_pass, forward_pass, grad_pass

n = int(sys.argv[1]) if len(sys.argv) > 1 else 16
X, labels = load_digits("float32")
X, Y = X[:n].copy(), np.eye(10, dtype=np.float32)[labels[:n]]
net = fastbp.Network([64, 32, 10], activations=["tanh", "softmax"], loss="cross_entropy",
                     seed=0)
S, acts, loss = np.array(net.layer_sizes, np.int64), net.act_codes, net.loss_code
A = np.zeros(n * int(S.sum()), np.float32)
Dl, cost = np.zeros_like(A), np.zeros(n)
Yb, Sb, SW = np.zeros((n, 10), np.float32), np.zeros(n, np.float32), np.zeros(0, np.float32)
p = net.params.copy()
g, WT = np.zeros_like(p), np.empty_like(p)
state, steps = np.zeros((2, p.size), np.float32), np.zeros(1, np.int64)
hyper = np.zeros(codes.N_HYPER)
hyper[codes.H_LR] = 0.01
order, stats = np.arange(n), np.zeros(4)


# Each part runs on the arrays it is given (globals would be compiled in as read-only).
@njit
def forward(N, A, p, WT, S, acts):
    for _ in range(N):
        forward_pass(None, A, p, WT, A.shape[0] // S.sum(), S, acts, None)


@njit
def costs(N, cost, A, Yb, S, acts, loss):
    for _ in range(N):
        loop._sample_costs(cost, A, Yb, Yb.shape[0], S, acts, loss)


@njit
def output_delta(N, Dl, A, Yb, SW, S, acts, loss):
    for _ in range(N):
        loop._output_delta(Dl, A, Yb, SW, Yb.shape[0], S, acts, loss)


@njit
def deltas(N, Dl, A, p, S, acts):
    for _ in range(N):
        delta_pass(None, Dl, A, p, A.shape[0] // S.sum(), S, acts, None)


@njit
def gradient(N, g, Dl, A, S):
    for _ in range(N):
        grad_pass(None, g, Dl, A, A.shape[0] // S.sum(), S, None)


@njit
def update(N, p, state, steps, g, S, hyper):
    for _ in range(N):
        loop._update(p, state, steps, g, S, np.float32(0.0625), 0, hyper, True)


@njit
def whole_batch(N, p, state, steps, g, A, Dl, cost, Yb, Sb, X, Y, SW, order, S, acts, loss,
                hyper, stats, WT):
    for _ in range(N):
        loop._epoch_batch(None, p, state, steps, g, A, Dl, cost, Yb, Sb, X, Y, SW, order,
                          order.shape[0], S, acts, loss, 0, hyper, True, stats, None, WT)


parts = {forward: (A, p, WT, S, acts), costs: (cost, A, Yb, S, acts, loss),
         output_delta: (Dl, A, Yb, SW, S, acts, loss), deltas: (Dl, A, p, S, acts),
         gradient: (g, Dl, A, S), update: (p, state, steps, g, S, hyper),
         whole_batch: (p, state, steps, g, A, Dl, cost, Yb, Sb, X, Y, SW, order, S, acts, loss,
                       hyper, stats, WT)}
for f, args in parts.items():
    f(10, *args)
    best = np.inf
    for _ in range(40):
        start = time.perf_counter()
        f(5000, *args)
        best = min(best, time.perf_counter() - start)
    print(f"batch {n}  {f.__name__:13s} {best / 5000 * 1e9:8.0f} ns")
