"""PyTorch as a rival: the benchmarks' network (``fastbp.bench.network``) as a
``torch.nn.Sequential`` with the same weights, trained by ``torch.optim.SGD``."""
from fastbp.bench import batch_size


def torch_mlp(net0, device="cpu"):
    """torch.nn.Sequential with net0's weights: Linear layers, Sigmoid between them, the
    logits out (pair it with CrossEntropyLoss for softmax + cross-entropy)."""
    import torch
    layers = []
    for k, (W, b) in enumerate(zip(net0.weights, net0.biases)):
        lin = torch.nn.Linear(W.shape[1], W.shape[0], dtype=getattr(torch, net0.dtype.name),
                              device=device)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if k < len(net0.weights) - 1:
            layers.append(torch.nn.Sigmoid())
    return torch.nn.Sequential(*layers)


def torch_contender(net0, schedule):
    """The bench's PyTorch contender: net0's network and plain SGD at rate 0.01, a Python
    loop over batches as PyTorch trains; ``make()`` returns (epoch(X, y), None), as
    ``compare.run`` takes its contenders."""
    import torch
    model = torch_mlp(net0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    lossf = torch.nn.CrossEntropyLoss()  # softmax + cross-entropy on the logits
    gen = torch.Generator().manual_seed(0)

    def make():
        def epoch(X, y):
            Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
            bs = batch_size(schedule, len(X))
            order = torch.randperm(len(X), generator=gen)
            for start in range(0, len(X), bs):
                rows = order[start:start + bs]
                opt.zero_grad(set_to_none=True)
                lossf(model(Xt[rows]), yt[rows]).backward()
                opt.step()
        return epoch, None
    return make
