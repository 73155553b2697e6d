"""One row at a time, as a control loop or a stream calls a network: `Network.forward` and
`Trainer.step` on one row of 64-32-10 (tanh, softmax, cross-entropy, float32, one thread),
side by side in this process with PyTorch eager (Linear-Tanh-Linear; softmax under no_grad
for the forward, CrossEntropyLoss + SGD for the step) when torch imports.

    python dev/one_row.py [--calls N]
"""
import argparse
import time

import numpy as np

import fastbp


def per_call(f, calls):
    """Microseconds per call, the best of three runs of ``calls`` calls after one warm-up."""
    f()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            f()
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


def fastbp_calls():
    net = fastbp.Network([64, 32, 10], activations=["tanh", "softmax"],
                         loss="cross_entropy", seed=0)
    trainer = fastbp.Trainer(net, schedule="online", learning_rate=0.01, threads=1)
    x = np.random.default_rng(0).random((1, 64)).astype(np.float32)
    y = np.zeros((1, 10), np.float32)
    y[0, 3] = 1
    return (lambda: net.forward(x)), (lambda: trainer.step(x, y))


def torch_calls():
    import torch
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(),
                                torch.nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = torch.nn.CrossEntropyLoss()
    x, y = torch.rand(1, 64), torch.tensor([3])

    def forward():
        with torch.no_grad():
            return torch.softmax(model(x), 1)

    def step():
        opt.zero_grad()
        loss(model(x), y).backward()
        opt.step()
    return forward, step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    rows = [("fastbp", fastbp_calls())]
    try:
        rows.append(("torch eager", torch_calls()))
    except ImportError:
        print("torch is not installed: fastbp alone")
    times = {name: [per_call(f, args.calls) for f in calls] for name, calls in rows}
    for name, (fwd, step) in times.items():
        print(f"{name:12s} forward {fwd:7.2f} us   step {step:7.2f} us")
    if "torch eager" in times:
        (ff, fs), (tf, ts) = times["fastbp"], times["torch eager"]
        print(f"fastbp / torch eager: forward {tf / ff:.1f}x faster, step {ts / fs:.1f}x faster")


if __name__ == "__main__":
    main()
