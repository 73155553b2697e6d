"""Samples/s of ``backend="cuda"`` training against PyTorch doing the same SGD on the GPU.

Run on a machine with an NVIDIA GPU (not under NUMBA_ENABLE_CUDASIM)::

    python benchmarks/gpu_vs_torch.py                      # float32, all nets and schedules
    python benchmarks/gpu_vs_torch.py --nets 64-32-10 --schedules online 64 --seconds 2

Nets 64-32-10, 784-128-10 and 784-512-512-10 (sigmoid hidden layers, softmax output,
cross-entropy), schedules online, B=64, B=1024 and full batch, learning rate 0.01, on
synthetic data. Each contender trains from the same initial weights; an epoch's time is
the best of ``--repeat`` epochs, after a warm-up epoch that compiles. Slow contenders
(online training above all) train on a prefix of the data sized to take about
``--seconds`` per epoch. Reported: samples/s, GFLOP/s at 6 FLOP per weight per sample
(DESIGN.md section 4), the path train_epoch took (fused in shared memory, fused with the
parameters in global memory, or per-layer launches), and before timing, the largest
difference between fastbp's and PyTorch's weights after one identical epoch.

This module sits in asv's benchmarks package but defines nothing asv collects.
"""
import argparse
import time

import numpy as np

from fastbp.bench import NETS, batch_size, flop_per_sample, network, trainer_options

SCHEDULES = ["online", "64", "1024", "full"]  # the GPU's batch sizes, beside the CPU table's
SAMPLES = 60000


def _fastbp_runner(net0, schedule, lr):
    """run(X, y, epochs) -> per-epoch seconds; trains a copy of net0 with backend='cuda'."""
    import fastbp
    net = network(net0.layer_sizes, net0.dtype.name)
    net.params[...] = net0.params

    def run(X, y, epochs, shuffle=True):
        trainer = fastbp.Trainer(net, **trainer_options(schedule, len(X)), learning_rate=lr,
                                 shuffle=shuffle, seed=0, backend="cuda")
        return trainer.fit(X, y, epochs=epochs).seconds
    return run, net


def _torch_runner(net0, schedule, lr, device="cuda"):
    """The same network and SGD in PyTorch on the GPU, data resident on the GPU."""
    import torch
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.backends.cuda.matmul.allow_tf32 = False  # full float32, as fastbp
    from fastbp.bench.torch_rival import torch_mlp
    model = torch_mlp(net0, dev)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    lossf = torch.nn.CrossEntropyLoss()  # softmax + cross-entropy on the logits, batch mean
    gen = torch.Generator(device=dev).manual_seed(0)

    def run(X, y, epochs, shuffle=True):
        Xd = torch.from_numpy(X).to(dev)
        yd = torch.from_numpy(y.astype(np.int64)).to(dev)
        n, batch = len(X), batch_size(schedule, len(X))
        seconds = []
        for _ in range(epochs):
            sync()
            start = time.perf_counter()
            order = (torch.randperm(n, device=dev, generator=gen) if shuffle
                     else torch.arange(n, device=dev))
            total = torch.zeros((), dtype=torch.float64, device=dev)
            for lo in range(0, n, batch):
                rows = order[lo:lo + batch]
                loss = lossf(model(Xd[rows]), yd[rows])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * len(rows)  # the epoch's loss, as fastbp records it
            float(total)  # synchronizes
            seconds.append(time.perf_counter() - start)
        return seconds
    return run, model


def _measure(run, X, y, schedule, target, repeat):
    """samples/s of the best epoch, on a prefix of the data taking about ``target`` s."""
    probe = min(len(X), 64 if schedule == "online" else 2048)
    run(X[:probe], y[:probe], 1)  # compile / warm up
    t = min(run(X[:probe], y[:probe], 1))
    n = int(min(len(X), max(probe, probe * target / max(t, 1e-9))))
    if schedule not in ("online", "full"):
        n = max(n, min(len(X), int(schedule)))
    return n / min(run(X[:n], y[:n], repeat)), n


def _path(net, schedule, n):
    from fastbp.kernels import cuda as ck
    plan = ck.fused_plan(batch_size(schedule, n), net.sizes, net.act_codes, net.dtype, False)
    if plan is None:
        return "per-layer"
    return "fused/shared" if plan.in_shared else "fused/global"


def _agreement(net0, schedule, lr, X, y, n=256, device="cuda"):
    """Largest |w_fastbp - w_torch| after one epoch over the same n samples in order."""
    import torch
    run_f, net = _fastbp_runner(net0, schedule, lr)
    run_t, model = _torch_runner(net0, schedule, lr, device)
    run_f(X[:n], y[:n], 1, shuffle=False)
    run_t(X[:n], y[:n], 1, shuffle=False)
    lins = [m for m in model if isinstance(m, torch.nn.Linear)]
    return max(max(np.abs(W - lin.weight.detach().cpu().numpy()).max(),
                   np.abs(b - lin.bias.detach().cpu().numpy()).max())
               for W, b, lin in zip(net.weights, net.biases, lins))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--schedules", nargs="+", default=SCHEDULES,
                        help="'online', 'full' or a batch size (default: %(default)s)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="about this long per timed epoch (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args(argv)

    from fastbp import backends
    backends.get("cuda")  # RuntimeError without numba-cuda or a GPU
    try:
        import torch
        have_torch = torch.cuda.is_available()
    except ImportError:
        have_torch = False
    from numba import cuda
    gpu = getattr(cuda.get_current_device(), "name", "the CUDA simulator")
    print(f"GPU: {gpu.decode() if isinstance(gpu, bytes) else gpu}   dtype: {args.dtype}   "
          f"PyTorch: {torch.__version__ if have_torch else 'not available on the GPU'}")
    print(f"{'net':16s} {'schedule':>8s} {'path':>13s} {'fastbp/s':>12s} {'GFLOP/s':>8s} "
          f"{'torch/s':>12s} {'GFLOP/s':>8s} {'speed-up':>8s} {'max|dw|':>9s}")
    rng = np.random.default_rng(0)
    for name in args.nets:
        net0 = network(NETS[name][0], args.dtype)
        X = rng.random((args.samples, net0.layer_sizes[0])).astype(args.dtype)
        y = rng.integers(0, net0.layer_sizes[-1], args.samples)
        flop = flop_per_sample(net0)
        for schedule in args.schedules:
            fast, n = _measure(_fastbp_runner(net0, schedule, args.lr)[0], X, y, schedule,
                               args.seconds, args.repeat)
            row = (f"{name:16s} {schedule:>8s} {_path(net0, schedule, n):>13s} "
                   f"{fast:12,.0f} {fast * flop / 1e9:8.2f}")
            if have_torch:
                diff = _agreement(net0, schedule, args.lr, X, y)
                ref, _ = _measure(_torch_runner(net0, schedule, args.lr)[0], X, y, schedule,
                                  args.seconds, args.repeat)
                row += f" {ref:12,.0f} {ref * flop / 1e9:8.2f} {fast / ref:8.2f} {diff:9.1e}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
