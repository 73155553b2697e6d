"""What the compiled kernels index, checked against the network before they run.

The CPU kernels index flat buffers without bounds checks (Numba's default): a ``params``
shorter than the network, a workspace cut for another network or a sample order pointing
past the data would read or write out of bounds. The contract functions of the loop
backend call these checks first; they cost a few microseconds per call, nothing per sample.
Each failure is a ValueError that names the buffer.
"""
import numpy as np


def layout(sizes, acts=None):
    """(P, sum of D) of a network; sizes (L + 1,) positive, acts (L,) when given."""
    sizes = np.asarray(sizes)
    if sizes.ndim != 1 or sizes.shape[0] < 2 or np.any(sizes < 1):
        raise ValueError(f"kernel sizes must be at least two positive layer sizes, got {sizes}")
    if acts is not None and np.asarray(acts).shape != (sizes.shape[0] - 1,):
        raise ValueError(f"kernel acts must hold one code per layer ({sizes.shape[0] - 1}), "
                         f"got shape {np.asarray(acts).shape}")
    d = [int(v) for v in sizes]
    return sum(o * (i + 1) for i, o in zip(d[:-1], d[1:])), sum(d)


def _at_least(name, array, length):
    if array.ndim != 1 or array.shape[0] < length:
        raise ValueError(f"kernel buffer {name} has shape {array.shape}; this network needs "
                         f"at least ({length},)")


def same_dtype(params, *named):
    """Each (name, array) of named holds params' dtype: the kernels' products run in one
    precision (loop_tiles), and a workspace of another would be converted element by
    element or not compile at all."""
    for name, array in named:
        if array.dtype != params.dtype:
            raise ValueError(f"kernel buffer {name} has dtype {array.dtype}; this network "
                             f"computes in {params.dtype}")


def parameters(params, sizes, acts=None, grad=None, state=None, name="params"):
    """params (called ``name``) and grad are (P,), state (2, P), all of one dtype; returns
    (P, sum of D)."""
    P, width = layout(sizes, acts)
    if params.shape != (P,):
        raise ValueError(f"kernel buffer {name} has shape {params.shape}; this network has "
                         f"{P} parameters")
    same_dtype(params, *[(k, v) for k, v in (("grad", grad), ("state", state)) if v is not None])
    if grad is not None and grad.shape != (P,):
        raise ValueError(f"kernel buffer grad has shape {grad.shape}, expected ({P},)")
    if state is not None and state.shape != (2, P):
        raise ValueError(f"kernel buffer state has shape {state.shape}, expected (2, {P})")
    return P, width


def outputs(A, Y, n, sizes, acts):
    """A holds n samples' activations, Y their targets; returns sum of D."""
    _, width = layout(sizes, acts)
    workspaces(n, width, ("A", A))
    if Y.ndim != 2 or Y.shape[0] < n or Y.shape[1] != sizes[-1]:
        raise ValueError(f"kernel targets Y have shape {Y.shape}, expected ({n}, {sizes[-1]})")
    return width


def workspaces(rows, width, *named):
    """Each (name, array) of named is a flat workspace for ``rows`` samples."""
    for name, array in named:
        _at_least(name, array, rows * width)


def epoch(params, state, grad, A, Dl, cost, Yb, Sb, X, Y, SW, order, batch_size, sizes, acts,
          rows):
    """Everything train_epoch indexes, for workspaces of ``rows`` samples."""
    _, width = parameters(params, sizes, acts, grad, state)
    workspaces(rows, width, ("A", A), ("Dl", Dl))
    same_dtype(params, ("A", A), ("Dl", Dl), ("Yb", Yb), ("Sb", Sb))
    n, d_in, d_out = X.shape[0], int(sizes[0]), int(sizes[-1])
    if X.ndim != 2 or X.shape[1] != d_in:
        raise ValueError(f"kernel data X has shape {X.shape}, expected (n, {d_in})")
    if Y.shape != (n, d_out):
        raise ValueError(f"kernel targets Y have shape {Y.shape}, expected ({n}, {d_out})")
    if SW.shape not in ((0,), (n,)):
        raise ValueError(f"kernel weights SW have shape {SW.shape}, expected (0,) or ({n},)")
    if batch_size < 1:
        raise ValueError(f"kernel batch_size must be at least 1, got {batch_size}")
    _at_least("cost", cost, rows)
    if Yb.ndim != 2 or Yb.shape[0] < rows or Yb.shape[1] != d_out:
        raise ValueError(f"kernel workspace Yb has shape {Yb.shape}, expected ({rows}, {d_out})")
    if SW.shape[0] and Sb.shape[0] < rows:
        raise ValueError(f"kernel workspace Sb has shape {Sb.shape}, expected ({rows},)")
    if order.ndim != 1 or order.shape[0] > n:
        raise ValueError(f"kernel order has shape {order.shape}; the data have {n} samples")
    if order.shape[0] and (order.min() < 0 or order.max() >= n):
        raise ValueError(f"kernel order holds sample indices outside 0..{n - 1}")


def sweep(params, state, steps, grad, A, Dl, cost, Yb, Sb, X, Y, SW, orders, active, hyper,
          stats, batch_size, sizes, acts, rows):
    """Everything sweep_epoch indexes: K models' rows of train_epoch's buffers."""
    K = params.shape[0]
    for name, array in (("state", state), ("steps", steps), ("grad", grad), ("A", A),
                        ("Dl", Dl), ("cost", cost), ("Yb", Yb), ("Sb", Sb), ("orders", orders),
                        ("active", active), ("hyper", hyper), ("stats", stats)):
        if array.shape[0] != K:
            raise ValueError(f"kernel buffer {name} has {array.shape[0]} rows for {K} models")
    if steps.shape != (K, 1) or stats.shape != (K, 4):
        raise ValueError(f"kernel buffers steps and stats must be ({K}, 1) and ({K}, 4), got "
                         f"{steps.shape} and {stats.shape}")
    if K:
        epoch(params[0], state[0], grad[0], A[0], Dl[0], cost[0], Yb[0], Sb[0], X, Y, SW,
              orders[0], batch_size, sizes, acts, rows)
        if orders.size and (orders.min() < 0 or orders.max() >= X.shape[0]):
            raise ValueError(f"kernel orders hold sample indices outside 0..{X.shape[0] - 1}")
