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
                      (the CPU ones run loop_tiles' register tiles, large products
                      loop_gemm's packed ones; the GPU ones cuda_tiles.block_product)
    update_layer     w <- optimizer step(w, g)                  loop_layers (cuda: _update_params,
                                                                 all layers in one launch)
    *_plain           the same equation as three plain loops, beside each CPU kernel: every
                      CPU path sums in their order and equals them bit for bit
    fused epochs      several steps in one pass: the hot paths
        loop_online.fused_online_epoch   online SGD on the CPU: per sample and layer
                                         _delta_update_rows (delta and update over W) and
                                         _update_forward_cols (update and the next
                                         sample's forward sum over W^T), through
                                         loop_tiles.sweep_rows / sweep_update_forward
        cuda_fused.fused_epoch           a whole epoch in one GPU block (SGD, Adam, RPROP):
                                         _fused_forward, _fused_delta, _fused_grad,
                                         _fused_grad_update
        cuda_sweep.sweep_epoch_kernel    a whole epoch of many models, a block per model
    lean paths        one compiled call for a few rows, the checks inside, the same passes
        loop_layers.forward_few          Network.forward on up to network.FEW_ROWS rows
        loop.step_few                    Trainer.step likewise (train_epoch as one batch)

Many models at once (fastbp.Sweep: ``loop.sweep_epoch``, ``cuda.sweep_epoch``): K models of
one structure keep every buffer above with a leading model axis, row k being model k's
own buffer, so that model k's epoch is train_epoch on row k:

    params, grad  (K, P)          model k's W[1], b[1], ... in row k, the layout above
    state         (K, 2, P)       steps (K, 1) int64, hyper (K, N_HYPER), stats (K, 4)
    A, Dl         (K, rows * sum(D))    cost (K, rows), Yb (K, rows, D[L]), Sb (K, rows)
                                  (rows: sweep_workspace_rows where a backend has it)
    orders        (K, n) int64    each model's sample order (its own seeded shuffle)
    active        (K,) bool       models still training
    X, Y, SW                      the data set, shared by all K models

The CPU threads take whole models (``prange`` over k), never parts of one model, and a GPU
block one model, so what model k computes does not depend on the thread count or on K.

Products on the CPU: those of at least loop_gemm.MIN_WORK (2^22) multiply-adds with a full
tile of rows and columns go through ``loop_gemm`` (packed panels, a register-blocked
micro-kernel written as LLVM IR), the rest through ``loop_tiles`` (register tiles over the
operands in place); both sum in the plain loops' order.

Row-level mathematics -- activations, softmax, the cost and output delta of a sample, the
L2-penalized gradient, the optimizer steps (``scalar.Step``, the constants of an update)
-- is written once, in ``scalar.py``, and compiled into the CPU and GPU kernels alike;
``vectorized`` applies the arithmetic steps to whole arrays.
"""
from fastbp import _numba_cache  # noqa: F401  (before any kernel: Numba's cache made safe)
