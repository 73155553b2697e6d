"""The chain of references: finite differences check the vectorized formulation; the
vectorized formulation checks every loop kernel, kernel by kernel."""
import numpy as np
import pytest

import fastbp
from fastbp import backends
from fastbp.kernels import codes, loop, vectorized

from ._util import assert_close, data

HIDDEN = ["sigmoid", "tanh", "relu", "identity"]
OUTPUT_LOSS = [("sigmoid", "mse"), ("tanh", "mse"), ("relu", "mse"), ("identity", "mse"),
               ("softmax", "mse"), ("softmax", "cross_entropy"), ("sigmoid", "cross_entropy")]
SIZES = [3, 5, 4, 2]  # two hidden layers, so hidden deltas propagate through a hidden layer
N = 7


def _net(hidden, output, loss, dtype="float64", sizes=SIZES, seed=0):
    net = fastbp.Network(sizes, activations=[hidden] * (len(sizes) - 2) + [output],
                         loss=loss, dtype=dtype, seed=seed)
    # Nonzero biases, so bias paths are exercised.
    for b in net.biases:
        b[...] = np.random.default_rng(seed + 1).normal(scale=0.3, size=b.shape)
    return net


@pytest.mark.parametrize("output,loss", OUTPUT_LOSS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_vectorized_gradients_match_finite_differences(hidden, output, loss):
    net = _net(hidden, output, loss)
    X, Y = data(N, SIZES[0], SIZES[-1], seed=3)
    dW, db = net.gradients(X, Y, backend="vectorized")
    analytic = np.concatenate([np.concatenate([w.ravel(), b]) for w, b in zip(dW, db)])
    numeric = np.empty_like(net.params)
    eps = 1e-6
    for k in range(net.n_params):
        keep = net.params[k]
        net.params[k] = keep + eps
        up = net.loss(X, Y, backend="vectorized")
        net.params[k] = keep - eps
        down = net.loss(X, Y, backend="vectorized")
        net.params[k] = keep
        numeric[k] = (up - down) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8,
                               err_msg=f"gradient vs finite differences, {hidden}/{output}/{loss}")


def _reference_pass(net, X, Y, n, sw=None):
    """Workspaces after a vectorized forward and backward pass over n samples (with
    per-sample weights sw, if given)."""
    units = int(net.sizes.sum())
    A = np.zeros(n * units, net.dtype)
    A[:X.size] = X.ravel()
    vectorized.forward(A, net.params, n, net.sizes, net.act_codes)
    Dl = np.zeros_like(A)
    sw = np.empty(0, net.dtype) if sw is None else sw
    vectorized.output_delta(Dl, A, Y, sw, n, net.sizes, net.act_codes, net.loss_code)
    vectorized.hidden_deltas(Dl, A, net.params, n, net.sizes, net.act_codes)
    return A, Dl


@pytest.mark.parametrize("output,loss", OUTPUT_LOSS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_kernels_match_vectorized(hidden, output, loss, compiled_backend, dtype):
    net = _net(hidden, output, loss, dtype=dtype)
    X, Y = data(N, SIZES[0], SIZES[-1], seed=4, dtype=dtype)
    if output == "softmax":
        Y = Y / Y.sum(axis=1, keepdims=True)
    check_kernels_against_vectorized(backends.get(compiled_backend), net, X, Y,
                                     f"{hidden}/{output}/{loss}, backend={compiled_backend}",
                                     grad_start=0.5)


def check_kernels_against_vectorized(kernels, net, X, Y, what, grad_start=0.0):
    """Each kernel of a backend module against its vectorized twin, fed the reference's
    inputs so a failure names the first kernel that differs. The output deltas carry
    per-sample weights. The gradient buffer starts at grad_start, as accumulate_gradients
    adds to what is there."""
    dtype, sizes, acts, n = net.dtype, np.array(net.sizes), net.act_codes, X.shape[0]
    sw = np.random.default_rng(7).uniform(0.0, 2.0, n).astype(dtype)
    A_ref, D_ref = _reference_pass(net, X, Y, n, sw)
    L_start = n * int(sizes[:-1].sum())

    A = np.zeros_like(A_ref)
    A[:X.size] = X.ravel()
    kernels.forward(A, net.params, n, sizes, acts)
    assert_close(A, A_ref, dtype, f"forward activations, {what}")

    cost, cost_ref = np.empty(n), np.empty(n)
    kernels.sample_costs(cost, A_ref, Y, n, sizes, acts, net.loss_code)
    vectorized.sample_costs(cost_ref, A_ref, Y, n, sizes, acts, net.loss_code)
    assert_close(cost, cost_ref, dtype, f"sample costs, {what}")

    Dl = np.zeros_like(A_ref)
    kernels.output_delta(Dl, A_ref, Y, sw, n, sizes, acts, net.loss_code)
    assert_close(Dl[L_start:], D_ref[L_start:], dtype, f"delta[L], {what}")
    kernels.hidden_deltas(Dl, A_ref, net.params, n, sizes, acts)
    assert_close(Dl, D_ref, dtype, f"hidden deltas, {what}")

    grad = np.full_like(net.params, grad_start)
    grad_ref = grad.copy()
    kernels.accumulate_gradients(grad, D_ref, A_ref, n, sizes)
    vectorized.accumulate_gradients(grad_ref, D_ref, A_ref, n, sizes)
    assert_close(grad, grad_ref, dtype, f"outer-product gradients, {what}")


@pytest.mark.parametrize("optimizer,momentum,nesterov", [
    ("sgd", 0.0, False), ("sgd", 0.9, False), ("sgd", 0.9, True), ("adam", 0.0, False),
    ("rprop", 0.0, False)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_update_matches_vectorized(optimizer, momentum, nesterov, use_bias, compiled_backend,
                                   dtype):
    net = _net("tanh", "identity", "mse", dtype=dtype)
    trainer = fastbp.Trainer(net, optimizer=optimizer, momentum=momentum, nesterov=nesterov,
                             learning_rate=0.3, l2=0.01)
    rng = np.random.default_rng(5)
    state = np.abs(rng.normal(size=(2, net.n_params))).astype(dtype)
    # A few steps, so RPROP sees sign changes and Adam's t grows.
    grads = rng.normal(size=(3, net.n_params)).astype(dtype)
    results = []
    for kernels in (backends.get(compiled_backend), vectorized):
        params, s, steps = net.params.copy(), state.copy(), np.array([3], np.int64)
        for grad in grads:
            kernels.update(params, s, steps, grad, np.array(net.sizes), 1 / 7,
                           codes.OPTIMIZERS[optimizer], trainer.hyperparameters(0.3), use_bias)
        results.append((params, s, steps))
    (p, s, t), (p_ref, s_ref, t_ref) = results
    what = f"after {optimizer} update, backend={compiled_backend}"
    assert_close(p, p_ref, dtype, f"params {what}")
    assert_close(s, s_ref, dtype, f"optimizer state {what}")
    assert t[0] == t_ref[0] == 6


def test_network_methods_agree_across_backends_and_chunks(backend, dtype, monkeypatch):
    import fastbp.network
    net = _net("sigmoid", "softmax", "cross_entropy", dtype=dtype, sizes=[3, 5, 4])
    X, labels = data(11, 3, 4, seed=6, dtype=dtype, labels=True)
    dW_ref, db_ref = net.gradients(X, labels, backend="vectorized")
    out_ref = net.forward(X, backend="vectorized")
    loss_ref = net.loss(X, labels, backend="vectorized")
    # Chunks of 4 rows: 4 + 4 + 3, so the summed gradient crosses chunk boundaries.
    monkeypatch.setattr(fastbp.network, "_CHUNK", 4)
    dW, db = net.gradients(X, labels, backend=backend)
    for m, (g, g_ref) in enumerate(zip(dW + db, dW_ref + db_ref)):
        assert_close(g, g_ref, dtype, f"gradient tensor {m}, backend={backend}")
    assert_close(net.forward(X, backend=backend), out_ref, dtype, f"forward, backend={backend}")
    assert_close(net.forward(X[0], backend=backend), out_ref[0], dtype,
                 f"forward of one sample, backend={backend}")
    assert_close(net.loss(X, labels, backend=backend), loss_ref, dtype, f"loss, backend={backend}")


def test_worked_example_output_before_training(backend):
    """2 inputs (0.35, 0.9), hidden weights (0.1, 0.8) and (0.4, 0.6), output weights
    (0.3, 0.9), no bias, sigmoid: output 0.69 before training."""
    for dtype in ("float32", "float64"):
        net = fastbp.Network([2, 2, 1], activations="sigmoid", bias=False, dtype=dtype)
        net.weights[0][...] = [[0.1, 0.8], [0.4, 0.6]]
        net.weights[1][...] = [[0.3, 0.9]]
        out = net.forward([0.35, 0.9], backend=backend)
        assert out.shape == (1,)
        assert round(float(out[0]), 2) == 0.69
        np.testing.assert_allclose(out[0], 0.690283, atol=1e-6)


def test_compiled_once_per_dtype_not_per_shape():
    for sizes in ([3, 5, 2], [4, 7, 6, 3], [2, 1], [9, 2, 2, 2, 5]):
        for dtype in ("float32", "float64"):
            net = fastbp.Network(sizes, activations="tanh", dtype=dtype, seed=1)
            X, Y = data(5, sizes[0], sizes[-1], dtype=dtype)
            net.gradients(X, Y)
            net.loss(X, Y)
    for kernel in (loop._forward, loop._sample_costs, loop._output_delta, loop._hidden_deltas,
                   loop._accumulate_gradients):
        # One specialization per dtype -- and, for the passes, per kind of thread tag and of
        # gemm work array (None where threads or gemm never pay, as for these networks;
        # other tests in this process may have compiled the array kinds, or passed the read-only
        # ``net.sizes`` straight to a kernel).
        kinds = {(str(sig[1].dtype), str(sig[0]) == "none", str(sig[-1]) == "none",
                  tuple(getattr(arg, "mutable", True) for arg in sig))
                 for sig in kernel.signatures}
        assert len(kernel.signatures) == len(kinds) and len(kinds) <= 16, (
            f"{kernel.__name__} compiled {len(kernel.signatures)} times: {kernel.signatures}")


_INSPECT_FLOAT32 = """
import numpy as np, fastbp
from fastbp.kernels import loop
net = fastbp.Network([3, 5, 4, 2], activations=["sigmoid", "tanh", "softmax"], loss="mse", seed=0)
rng = np.random.default_rng(0)
X, Y = rng.normal(size=(7, 3)), rng.uniform(size=(7, 2))
net.gradients(X, Y)
fastbp.Trainer(net, optimizer="adam").step(X, Y)
for kernel in (loop._forward, loop._output_delta, loop._hidden_deltas, loop._accumulate_gradients,
               loop._update):
    (sig,) = kernel.signatures
    widened = kernel.inspect_llvm(sig).count("fpext float")
    print(kernel.__name__, widened)
"""


def test_float32_stays_float32(tmp_path):
    """The loop kernels keep float32 arithmetic in float32 (no float -> double in the IR).

    Runs in a fresh process with an empty cache: Numba cannot inspect cached code. That
    first compilation announces itself on stderr, once.
    """
    import os
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    run = subprocess.run([sys.executable, "-c", _INSPECT_FLOAT32], env=env, check=True,
                         capture_output=True, text=True)
    counts = dict(line.split() for line in run.stdout.splitlines())
    assert len(counts) == 5, run.stdout
    for name, widened in counts.items():
        assert widened == "0", f"{name} widens float32 to double {widened} times"
    assert run.stderr.count("fastbp: compiling kernels for float32") == 1, run.stderr
