"""fastbp networks written as FANN's network files (``.net``): :func:`write`, which
:meth:`fastbp.Network.to_fann` calls (through :mod:`fastbp.fann_format`, which re-exports
it), makes a FANN_FLO_2.1 file for libfann's ``fann_create_from_file``.

:mod:`fastbp.fann_format` describes the format and how a fastbp network maps onto FANN's;
it reads these files. The names both sides use -- FANN's activation codes, the scaling
parameters' lines, the start of the neurons and connections lines -- are defined here,
since fann_format imports this module.
"""
import numpy as np

# FANN's activation functions (fann_data.h, FANN 2.2 and its development version).
FANN_ACTIVATIONS = (
    "FANN_LINEAR", "FANN_THRESHOLD", "FANN_THRESHOLD_SYMMETRIC", "FANN_SIGMOID",
    "FANN_SIGMOID_STEPWISE", "FANN_SIGMOID_SYMMETRIC", "FANN_SIGMOID_SYMMETRIC_STEPWISE",
    "FANN_GAUSSIAN", "FANN_GAUSSIAN_SYMMETRIC", "FANN_GAUSSIAN_STEPWISE", "FANN_ELLIOT",
    "FANN_ELLIOT_SYMMETRIC", "FANN_LINEAR_PIECE", "FANN_LINEAR_PIECE_SYMMETRIC",
    "FANN_SIN_SYMMETRIC", "FANN_COS_SYMMETRIC", "FANN_SIN", "FANN_COS",
    "FANN_LINEAR_PIECE_RECT", "FANN_LINEAR_PIECE_RECT_LEAKY")
FANN_LINEAR, FANN_SIGMOID, FANN_SIGMOID_SYMMETRIC, FANN_LINEAR_PIECE_RECT = 0, 3, 5, 18

# fastbp activation -> (FANN activation code, steepness) whose function is fastbp's.
_WRITE = {"sigmoid": (FANN_SIGMOID, 0.5), "tanh": (FANN_SIGMOID_SYMMETRIC, 1.0),
          "identity": (FANN_LINEAR, 1.0)}

SCALES = ("scale_mean_in", "scale_deviation_in", "scale_new_min_in", "scale_factor_in",
          "scale_mean_out", "scale_deviation_out", "scale_new_min_out", "scale_factor_out")
NEURONS_KEY = b"neurons (num_inputs, activation_function, activation_steepness)="
CONNECTIONS_KEY = b"connections (connected_to_neuron, weight)="

# What fann_save writes for the settings fastbp has no use for: FANN 2.2's defaults
# (fann_create_standard), but the error function FANN_ERRORFUNC_LINEAR (0), the gradient
# of fastbp's "mse". "{T:...}" values are fann_types, written as fann_save writes them.
_DEFAULTS = (
    "learning_rate=0.700000\nconnection_rate=1.000000\nnetwork_type=0\n"
    "learning_momentum=0.000000\ntraining_algorithm=2\ntrain_error_function=0\n"
    "train_stop_function=0\ncascade_output_change_fraction=0.010000\n"
    "quickprop_decay=-0.000100\nquickprop_mu=1.750000\nrprop_increase_factor=1.200000\n"
    "rprop_decrease_factor=0.500000\nrprop_delta_min=0.000000\nrprop_delta_max=50.000000\n"
    "rprop_delta_zero=0.100000\ncascade_output_stagnation_epochs=12\n"
    "cascade_candidate_change_fraction=0.010000\ncascade_candidate_stagnation_epochs=12\n"
    "cascade_max_out_epochs=150\ncascade_min_out_epochs=50\ncascade_max_cand_epochs=150\n"
    "cascade_min_cand_epochs=50\ncascade_num_candidate_groups=2\n"
    "bit_fail_limit={T[0.35]}\ncascade_candidate_limit={T[1000.0]}\n"
    "cascade_weight_multiplier={T[0.4]}\ncascade_activation_functions_count=10\n"
    "cascade_activation_functions=3 5 7 8 10 11 14 15 16 17 \n"
    "cascade_activation_steepnesses_count=4\ncascade_activation_steepnesses="
    "{T[0.25]} {T[0.5]} {T[0.75]} {T[1.0]} \n")


def write(path, net):
    """Write ``net`` (a fastbp Network) to ``path`` as a FANN_FLO_2.1 file that libfann's
    ``fann_create_from_file`` loads and runs with the network's outputs.

    Hidden and output layers become ``FANN_SIGMOID_SYMMETRIC`` with steepness 1 (tanh),
    ``FANN_SIGMOID`` with steepness 0.5 (sigmoid) or ``FANN_LINEAR`` with steepness 1
    (identity): the weights are written as they are, with 21 significant digits, so
    libfann reads back exactly the network's values (libfloatfann rounds a float64
    network's to float). ``relu`` and ``softmax`` layers are refused with ValueError:
    FANN 2.2, the released library, has no rectifier (``FANN_LINEAR_PIECE_RECT`` exists
    only in FANN's development version, which :func:`fastbp.fann_format.read` reads) and FANN has no
    softmax. A network without biases gets bias weights of 0.
    """
    for m, act in enumerate(net.activations, start=1):
        if act not in _WRITE:
            why = ("FANN has no softmax (its outputs are independent units); write the "
                   "network's logits with an 'identity' output and apply softmax after "
                   "fann_run" if act == "softmax" else
                   "FANN 2.2, the released libfann, has no rectifier (FANN_LINEAR_PIECE_RECT "
                   "exists only in FANN's unreleased development version, and FANN 2.2's "
                   "fann_run would not compute it)")
            raise ValueError(f"cannot write {path} as a FANN network: layer {m} is "
                             f"{act!r}, which FANN cannot run: {why}")
    sizes = net.layer_sizes
    fmt = np.dtype(net.dtype).type  # fann_types as the network's dtype holds them

    class _FannTypes:
        def __getitem__(self, value):
            return f"{float(fmt(float(value))):.20e}"

    out = [f"FANN_FLO_2.1\nnum_layers={len(sizes)}\n", _DEFAULTS.format(T=_FannTypes()),
           "layer_sizes=" + "".join(f"{d + 1} " for d in sizes) + "\n",
           _scaling_lines(net.input_scaling, sizes[0], sizes[-1]), NEURONS_KEY.decode()]
    zero = f"{0.0:.20e}"
    out.append(f"(0, 0, {zero}) " * (sizes[0] + 1))
    for m, act in enumerate(net.activations, start=1):
        code, steepness = _WRITE[act]
        s = f"{steepness:.20e}"
        out.append(f"({sizes[m - 1] + 1}, {code}, {s}) " * sizes[m])
        # The bias neuron: FANN gives a hidden layer's its layer's function, the output's none.
        out.append(f"(0, {code}, {s}) " if m < len(sizes) - 1 else f"(0, 0, {zero}) ")
    out.append("\n" + CONNECTIONS_KEY.decode())
    first = 0  # number of layer m-1's first neuron
    for W, b, n_in in zip(net.weights, net.biases, sizes[:-1]):
        values = np.hstack([W, b[:, None]]).astype(np.float64).ravel().tolist()
        sources = np.tile(np.arange(first, first + n_in + 1), W.shape[0]).tolist()
        out.append("".join(f"({s}, {v:.20e}) " for s, v in zip(sources, values)))
        first += n_in + 1
    out.append("\n")
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write("".join(out))


def _scaling_lines(scaling, n_in, n_out):
    """FANN_FLO_2.1's scaling lines for a network's input_scaling: FANN's
    ``fann_scale_input`` computes ``((x - mean) / deviation + 1) * factor + new_min``, which
    with mean = offset, deviation = scale, factor 1 and new_min -1 is fastbp's
    ``(x - offset) / scale``; the outputs are left as they are (factor 1, new_min -1,
    mean 0, deviation 1)."""
    if scaling is None:
        return "scale_included=0\n"
    columns = dict(scale_mean_in=scaling.offset, scale_deviation_in=scaling.scale,
                   scale_new_min_in=[-1.0] * n_in, scale_factor_in=[1.0] * n_in,
                   scale_mean_out=[0.0] * n_out, scale_deviation_out=[1.0] * n_out,
                   scale_new_min_out=[-1.0] * n_out, scale_factor_out=[1.0] * n_out)
    return "scale_included=1\n" + "".join(
        f"{name}=" + "".join(f"{float(v):.20e} " for v in columns[name]) + "\n"
        for name in SCALES)
