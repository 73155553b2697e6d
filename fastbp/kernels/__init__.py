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
"""
