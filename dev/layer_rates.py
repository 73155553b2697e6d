"""GFLOP/s of the loop per-layer kernels against NumPy on one layer, 1 thread.
python dev/layer_rates.py [n n_in n_out ...]"""
import sys
import time

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from fastbp.kernels import codes, loop_layers as ll

numba.set_num_threads(1)
threadpool_limits(1)
shapes = [tuple(map(int, sys.argv[i:i + 3])) for i in range(1, len(sys.argv), 3)] or [
    (256, 784, 128), (256, 784, 512), (256, 512, 512), (256, 512, 10)]


def best(f, reps=7):
    f()
    t = 1e9
    for _ in range(reps):
        s = time.perf_counter()
        f()
        t = min(t, time.perf_counter() - s)
    return t


for n, n_in, n_out in shapes:
    rng = np.random.default_rng(0)
    W = rng.normal(size=(n_out, n_in)).astype(np.float32)
    params = np.concatenate([W.ravel(), np.zeros(n_out, np.float32)])
    a = rng.random((n, n_in)).astype(np.float32)
    A = np.concatenate([a.ravel(), np.zeros(n * n_out, np.float32)])
    d = rng.normal(size=(n, n_out)).astype(np.float32)
    Dl = np.concatenate([np.zeros(n * n_in, np.float32), d.ravel()])
    grad = np.zeros_like(params)
    one = np.float32(1)
    flop = 2 * n * n_in * n_out / 1e9
    rows = {
        "forward": (lambda: ll._forward_layer(A, n * n_in, params, 0, 0, n_in, n_out, codes.IDENTITY, one, 0, n),
                    lambda: a @ W.T),
        "delta": (lambda: ll._delta_layer(Dl, 0, A, 0, params, 0, n * n_in, n_in, n_out, codes.IDENTITY, one, 0, n),
                  lambda: d @ W),
        "grad": (lambda: ll._grad_layer(grad, 0, Dl, n * n_in, A, 0, n, n_in, n_out, 0, n_out),
                 lambda: d.T @ a),
    }
    for name, (ours, ref) in rows.items():
        t, r = best(ours), best(ref)
        print(f"{n}x{n_in}x{n_out} {name:8s} loop {flop / t:6.1f} GF/s  numpy {flop / r:6.1f} GF/s  ratio {r / t:5.2f}")

from fastbp.kernels import loop_gemm as lg  # noqa: E402

print(f"gemm tiles: MR={lg.MR}, NR={lg.nr(4)} (float32), vector bytes {lg.VECTOR_BYTES}")
for n, n_in, n_out in shapes:
    rng = np.random.default_rng(0)
    W = rng.normal(size=(n_out, n_in)).astype(np.float32)
    a = rng.random((n, n_in)).astype(np.float32)
    d = rng.normal(size=(n, n_out)).astype(np.float32)
    work = lg.work_for(np.array([n_in, n_out]), np.zeros(1, np.float32), n)
    flop = 2 * n * n_in * n_out / 1e9
    z = np.empty(n * n_out, np.float32)
    dl = np.empty(n * n_in, np.float32)
    gW = np.zeros(n_out * n_in, np.float32)
    Wf, af, df = W.ravel(), a.ravel(), d.ravel()
    checks = {
        "forward": (lambda: lg.gemm(z, 0, af, 0, False, Wf, 0, True, n, n_out, n_in, False, work),
                    lambda: a @ W.T, lambda: z.reshape(n, n_out)),
        "delta": (lambda: lg.gemm(dl, 0, df, 0, False, Wf, 0, False, n, n_in, n_out, False, work),
                  lambda: d @ W, lambda: dl.reshape(n, n_in)),
        "grad": (lambda: lg.gemm(gW, 0, df, 0, True, af, 0, False, n_out, n_in, n, False, work),
                 lambda: d.T @ a, lambda: gW.reshape(n_out, n_in)),
    }
    for name, (ours, ref, out) in checks.items():
        t, r = best(ours), best(ref)
        ok = np.allclose(out(), ref(), rtol=1e-3, atol=1e-3)
        print(f"{n}x{n_in}x{n_out} {name:8s} gemm {flop / t:6.1f} GF/s  numpy {flop / r:6.1f} GF/s  "
              f"ratio {r / t:5.2f}  {'ok' if ok else 'WRONG'}")
