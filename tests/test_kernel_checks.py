"""The loop kernels check what they index: a buffer cut for another network is a
ValueError naming it, never an out-of-bounds read or write."""
import numpy as np
import pytest

import fastbp
from fastbp.kernels import codes, loop


def _epoch_args(sizes=(4, 6, 3), n=5, batch_size=2):
    net = fastbp.Network(list(sizes), activations=["tanh", "softmax"], loss="cross_entropy",
                         seed=0)
    P, width, rows = net.params.size, sum(sizes), loop.workspace_rows(batch_size)
    rng = np.random.default_rng(0)
    f = net.dtype
    return dict(
        params=net.params.copy(), state=np.zeros((2, P), f), steps=np.zeros(1, np.int64),
        grad=np.zeros(P, f), A=np.zeros(rows * width, f), Dl=np.zeros(rows * width, f),
        cost=np.zeros(rows), Yb=np.zeros((rows, sizes[-1]), f), Sb=np.zeros(0, f),
        X=rng.normal(size=(n, sizes[0])).astype(f),
        Y=np.eye(sizes[-1], dtype=f)[rng.integers(0, sizes[-1], n)],
        SW=np.zeros(0, f), order=np.arange(n), batch_size=batch_size,
        sizes=np.asarray(sizes, np.int64), acts=net.act_codes, loss=net.loss_code,
        opt=codes.OPTIMIZERS["sgd"], hyper=np.zeros(codes.N_HYPER), use_bias=True,
        stats=np.zeros(4))


def test_a_sound_epoch_runs():
    args = _epoch_args()
    args["hyper"][codes.H_LR] = 0.1
    before = args["params"].copy()
    loop.train_epoch(**args)
    assert args["stats"][1] == 5 and not np.array_equal(before, args["params"])


@pytest.mark.parametrize("name, bad, match", [
    ("params", lambda a: a["params"][:10], "params"),
    ("state", lambda a: a["state"][:, :10], "state"),
    ("grad", lambda a: a["grad"][:3], "grad"),
    ("A", lambda a: a["A"][:5], "A"),
    ("Dl", lambda a: a["Dl"][:5], "Dl"),
    ("cost", lambda a: a["cost"][:0], "cost"),
    ("Yb", lambda a: a["Yb"][:, :2], "Yb"),
    ("X", lambda a: a["X"][:, :2], "X"),
    ("Y", lambda a: a["Y"][:3], "Y"),
    ("SW", lambda a: np.ones(2), "SW"),
    ("order", lambda a: np.array([0, 1, 99]), "order"),
    ("order", lambda a: np.array([0, -1]), "order"),
    ("sizes", lambda a: np.array([4, 0, 3]), "sizes"),
    ("acts", lambda a: a["acts"][:1], "acts"),
    ("batch_size", lambda a: 0, "batch_size"),
    ("A", lambda a: a["A"].astype(np.float64), "A has dtype float64"),
    ("grad", lambda a: a["grad"].astype(np.float64), "grad has dtype float64"),
])
@pytest.mark.parametrize("batch_size", [1, 2])
def test_train_epoch_refuses_buffers_of_another_shape(name, bad, match, batch_size):
    args = _epoch_args(batch_size=batch_size)
    args[name] = bad(args)
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    with pytest.raises(ValueError, match=match):
        loop.train_epoch(**args)
    for k, v in before.items():
        np.testing.assert_array_equal(args[k], v)


def test_one_off_kernels_refuse_short_buffers():
    args = _epoch_args()
    p, s, a = args["params"], args["sizes"], args["acts"]
    with pytest.raises(ValueError, match="params"):
        loop.forward(np.zeros(100), p[:-1], 3, s, a)
    with pytest.raises(ValueError, match="A"):
        loop.forward(np.zeros(10), p, 3, s, a)
    with pytest.raises(ValueError, match="cost"):
        loop.sample_costs(np.zeros(2), np.zeros(100), np.zeros((3, 3)), 3, s, a, 0)
    with pytest.raises(ValueError, match="Y"):
        loop.output_delta(np.zeros(100), np.zeros(100), np.zeros((2, 3)), np.zeros(0), 3, s, a, 0)
    with pytest.raises(ValueError, match="Dl"):
        loop.hidden_deltas(np.zeros(10), np.zeros(100), p, 3, s, a)
    with pytest.raises(ValueError, match="grad"):
        loop.accumulate_gradients(np.zeros(3), np.zeros(100), np.zeros(100), 3, s)
    with pytest.raises(ValueError, match="state"):
        loop.update(p, np.zeros((2, 5)), np.zeros(1, np.int64), np.zeros_like(p), s, 1.0, 0,
                    np.zeros(codes.N_HYPER), True)


def test_train_epochs_and_sweep_epoch_check_too():
    args = _epoch_args()
    del args["stats"]
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="params"):
        loop.train_epochs(**{**args, "params": args["params"][:4]}, rng=rng, shuffle=True,
                          rates=np.full(2, 0.1), history=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="history"):
        loop.train_epochs(**args, rng=rng, shuffle=True, rates=np.full(2, 0.1),
                          history=np.zeros((1, 4)))
    K = 3
    stacked = {k: np.stack([args[k]] * K) for k in
               ("params", "state", "steps", "grad", "A", "Dl", "cost", "Yb", "Sb")}
    sweep = dict(stacked, X=args["X"], Y=args["Y"], SW=args["SW"],
                 orders=np.stack([args["order"]] * K), active=np.ones(K, bool),
                 batch_size=2, sizes=args["sizes"], acts=args["acts"], loss=args["loss"],
                 opt=args["opt"], hyper=np.zeros((K, codes.N_HYPER)), use_bias=True,
                 stats=np.zeros((K, 4)))
    loop.sweep_epoch(**sweep)
    with pytest.raises(ValueError, match="order"):
        loop.sweep_epoch(**{**sweep, "orders": sweep["orders"] + 5})
    with pytest.raises(ValueError, match="rows"):
        loop.sweep_epoch(**{**sweep, "A": sweep["A"][:2]})
