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

# Canonical name of each activation code ("linear" is an alias of "identity").
ACTIVATION_NAMES = {IDENTITY: "identity", SIGMOID: "sigmoid", TANH: "tanh",
                    RELU: "relu", SOFTMAX: "softmax"}

SGD = 0
ADAM = 1
RPROP = 2
OPTIMIZERS = {"sgd": SGD, "adam": ADAM, "rprop": RPROP}

# Slots of the float64 hyperparameter array every update kernel receives.
H_LR = 0          # learning rate (RPROP: the initial step size, used by the trainer only)
H_MOMENTUM = 1    # SGD momentum
H_NESTEROV = 2    # 1.0 for Nesterov momentum
H_L2 = 3          # L2 penalty on the weights
H_BETA1 = 4       # Adam
H_BETA2 = 5
H_EPS = 6
H_ETA_MINUS = 7   # RPROP
H_ETA_PLUS = 8
H_STEP_MIN = 9
H_STEP_MAX = 10
N_HYPER = 11
