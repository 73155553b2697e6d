"""Integer codes for activations and losses, shared by every kernel backend.

Kernels receive these codes instead of Python callables so that Numba can cache
one compiled specialization per dtype, whatever the network's shape or choices.
"""

IDENTITY = 0
SIGMOID = 1
TANH = 2
RELU = 3
SOFTMAX = 4

MSE = 0
CROSS_ENTROPY = 1

ACTIVATIONS = {
    "identity": IDENTITY,
    "linear": IDENTITY,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "softmax": SOFTMAX,
}
LOSSES = {"mse": MSE, "cross_entropy": CROSS_ENTROPY}

# Canonical name of each code, for messages and for save files.
ACTIVATION_NAMES = {IDENTITY: "identity", SIGMOID: "sigmoid", TANH: "tanh",
                    RELU: "relu", SOFTMAX: "softmax"}
LOSS_NAMES = {MSE: "mse", CROSS_ENTROPY: "cross_entropy"}
