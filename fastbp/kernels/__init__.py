"""Kernel backends sharing one contract: ``loop`` (Numba CPU), ``vectorized`` (NumPy), ``cuda``.

Every backend module defines the same functions with the same argument order.
Arrays shared by all of them:

    params  (P,)               W[1], b[1], W[2], b[2], ...; W[m] is (D[m], D[m-1]) row-major
    grad    (P,)               same layout as params
    A       (>= n * sum(D),)   layer-major activations for a batch of n samples: block m is
                               (n, D[m]) and starts at n * (D[0] + ... + D[m-1]); block 0 holds
                               the inputs
    Dl      like A             deltas, same layout (block 0 unused)
    sizes   (L + 1,) int64     D[0] .. D[L]
    acts    (L,) int64         activation code of layers 1..L (fastbp.kernels.codes)
    state   (2, P)             optimizer state (SGD velocity; Adam m, v; RPROP previous
                               gradient, step size), laid out like params in each row
    steps   (1,) int64         updates made so far (Adam's bias correction)
    hyper   (N_HYPER,) float64 optimizer hyperparameters, slots codes.H_*
    SW, sw  (n,) or (0,)       per-sample weights of the data set (SW) or of a batch (sw);
                               empty means every weight is 1. A batch's update follows its
                               weighted mean gradient, sum w g / sum w.
    stats   (4,) float64       what train_epoch saw: summed weighted cost, samples, a stop
                               flag (a batch's cost was not finite), summed weight

Kernels: forward, sample_costs, output_delta, hidden_deltas, accumulate_gradients,
update, and train_epoch (a whole epoch). Memory hooks: workspace_rows(batch_size),
empty(shape, dtype), to_device(array), to_host(array, out); the CPU backends take host
arrays as they are (``_host``), the cuda backend keeps a fit's arrays on the GPU. The loop
backend adds train_epochs (many epochs in one call) and compile_for (every kernel a fit
will call, compiled or loaded before anything is timed).

Below the contract, one vocabulary in every backend, each name one equation of DESIGN.md
section 1 (search a name to find it everywhere):

    _forward_layer    z = W a_in + b, a = act(z), for a batch    loop_layers, cuda_layers
    _delta_layer      delta[m] = act' (*) W[m+1]^T delta[m+1]    loop_layers, cuda_layers
    _grad_layer       gW += delta a_in^T, gb += delta            loop_layers, cuda_layers
                      (the three GPU ones share cuda_tiles._block_product, 4x4 per thread;
                      large CPU products go through loop_gemm)
    _update_layer     w <- optimizer step(w, g)                  loop_layers (cuda: _update_params,
                                                                 all layers in one launch)
    *_plain           the same equation as three plain loops, beside each blocked CPU kernel
    _fused_*          several steps in one pass: the hot paths
        loop_online.fused_online_epoch   online SGD on the CPU: per sample _forward_sample,
                                         then per layer _fused_delta_update_sample (delta
                                         propagation and the SGD update in one sweep)
        cuda_fused.fused_epoch           a whole epoch in one GPU block (SGD, Adam, RPROP):
                                         _fused_forward, _fused_delta, _fused_grad,
                                         _fused_grad_update

Many models at once (fastbp.Sweep, loop backend: ``loop.sweep_epoch``): K models of one
structure keep every buffer above with a leading model axis, row k being model k's own
buffer, so that model k's epoch is train_epoch on row k:

    params, grad  (K, P)          model k's W[1], b[1], ... in row k, the layout above
    state         (K, 2, P)       steps (K, 1) int64, hyper (K, N_HYPER), stats (K, 4)
    A, Dl         (K, rows * sum(D))    cost (K, rows), Yb (K, rows, D[L]), Sb (K, rows)
    orders        (K, n) int64    each model's sample order (its own seeded shuffle)
    active        (K,) bool       models still training
    X, Y, SW                      the data set, shared by all K models

The threads take whole models (``prange`` over k), never parts of one model, so what
model k computes does not depend on the thread count.

Large batches on the CPU: products of at least 2^18 multiply-adds with a full tile of
rows and columns go through ``loop_gemm`` (packed panels, a register-blocked micro-kernel
written as LLVM IR); the rest through the blocked loops of ``loop_layers``.

Row-level mathematics -- activations, softmax, the cost and output delta of a sample, the
L2-penalized gradient, the optimizer steps -- is written once, in ``scalar.py``, and
compiled into the CPU and GPU kernels alike; ``vectorized`` applies the arithmetic steps
to whole arrays.
"""
from fastbp import _numba_cache  # noqa: F401  (before any kernel: Numba's cache made safe)
