"""The options of ``fastbp train`` and the help formatter of every ``fastbp`` command."""
import argparse
import copy

from fastbp import backends, datasets
from fastbp.kernels import codes
from fastbp.trainer import SCHEDULES

# What --threads left out (threads=None) does, in the words of fastbp._session.auto_threads
# for one network and of Sweep for a grid; --help and the banner say it alike.
AUTO_THREADS = ("one thread unless a batch is large enough for threads to pay, then the "
                "cores other processes leave idle")
AUTO_THREADS_SWEEP = "the models spread over all of Numba's threads"



class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's help with every option's default: "(default: X)" after each option, with
    help text or without, whose help does not say it itself (see _has_default)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or not _has_default(action):
            return text
        return super()._get_help_string(action).strip()

    def _format_action(self, action):
        if not action.help and action.option_strings and _has_default(action):
            action = copy.copy(action)  # an option without help text: its default alone
            action.help = "(default: %(default)s)"
        return super()._format_action(action)


def _has_default(action):
    """Not for flags (nargs=0) nor a default of None: their help says what they do."""
    return action.nargs != 0 and action.default not in (None, argparse.SUPPRESS)


def add_train_options(parser):
    """The options of ``fastbp train``, in the groups its --help shows."""
    data = parser.add_argument_group("the data and how it is split and scaled")
    data.add_argument("--data", default="digits",
                      help="'digits' (the bundled 8x8 handwritten digits), an .npz with X and "
                           "y (or Y), a .csv (header row optional; target column last, or "
                           "--target), or a FANN training file (.train, .test, .data); the kind "
                           "comes from the suffix, else from the content")
    data.add_argument("--test-data", metavar="PATH", default=None,
                      help="held-out data from this file (same formats), e.g. a FANN set's "
                           ".test file (default: none: --test-fraction of --data is held out)")
    data.add_argument("--target", default="-1", metavar="COLUMN",
                      help="CSV target column: a name from the header row, or an index "
                           "(default: -1, the last)")
    data.add_argument("--task", default="auto", choices=datasets.TASKS,
                      help="auto: class names, one-hot 0/1 or -1/1 target rows (FANN's "
                           "encoding, class = argmax) and whole-number labels are "
                           "classification -- unless the whole numbers take more than "
                           f"{datasets.MAX_AUTO_CLASSES} distinct values and more than "
                           f"{datasets.MAX_AUTO_CLASS_SHARE:.0%}% of the rows do; other targets "
                           "are regression. The run says which and why")
    data.add_argument("--test-fraction", type=float, default=0.2,
                      help="share of --data held out for testing, in (0, 1)")
    data.add_argument("--no-scale", dest="scale", action="store_false",
                      help="train on the data as given, not on inputs standardized with the "
                           "training part's means and standard deviations (saved with the "
                           "network) and a regression's targets standardized likewise")
    network = parser.add_argument_group("the network")
    network.add_argument("--hidden", type=int, nargs="*", default=[64], metavar="N",
                         help="hidden layer sizes (default: 64)")
    network.add_argument("--activation", default="tanh", choices=sorted(codes.ACTIVATIONS),
                         help="hidden layers' activation")
    network.add_argument("--output", default=None, choices=sorted(codes.ACTIVATIONS),
                         help="output activation (default: softmax for classes, identity for "
                              "regression)")
    network.add_argument("--loss", default=None, choices=sorted(codes.LOSSES),
                         help="cost per sample (default: cross_entropy for a softmax or sigmoid "
                              "output, else mse)")
    network.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                         help="the network's floating-point type")
    training = parser.add_argument_group("how it is trained")
    training.add_argument("--schedule", default="minibatch", choices=SCHEDULES,
                          help="online: an update per sample; minibatch: per --batch-size "
                               "samples; fullbatch: per epoch")
    training.add_argument("--batch-size", type=int, default=16,
                          help="samples per update with --schedule minibatch")
    training.add_argument("--optimizer", default="sgd", choices=sorted(codes.OPTIMIZERS),
                          help="sgd (with --momentum), adam, or rprop (best with --schedule "
                               "fullbatch; --lr is then its initial step size)")
    training.add_argument("--learning-rate", "--lr", type=float, default=None,
                          help="step size, rprop's initial one (default: 0.1 for classification, "
                               "0.01 for regression, whose mse gradients have no bound)")
    training.add_argument("--lr-schedule", default=None, metavar="SPEC",
                          help="constant, invscaling[:decay=D,power=P], step[:every=N,gamma=G], "
                               "plateau[:factor=F,patience=N] (default: constant)")
    training.add_argument("--momentum", type=float, default=None,
                          help="SGD momentum (default: 0.9 with sgd; 0 when --sweep varies the "
                               "optimizer)")
    training.add_argument("--l2", type=float, default=0.0,
                          help="L2 penalty on the weights (biases are not penalized)")
    training.add_argument("--epochs", type=int, default=30, help="passes over the training data")
    training.add_argument("--patience", type=int, default=None, metavar="N",
                          help="stop after N epochs without a better held-out loss, and keep the "
                               "best epoch's weights (default: none: train all --epochs)")
    training.add_argument("--seed", type=int, default=0,
                          help="seed of the initial weights, the sample order and the held-out "
                               "split")
    training.add_argument("--sweep", metavar="GRID", default=None,
                          help="train a grid of networks with fastbp.Sweep, e.g. "
                               "'learning_rate=0.01,0.1 seed=0,1,2': space-separated KEY=V1,V2 of "
                               "Network/Trainer keywords, or hidden (64 or 64x32) and activation; "
                               "prints one row per network and marks the best (lowest held-out "
                               "loss); --save saves it (default: none: one network)")
    run = parser.add_argument_group("where it runs and what it writes")
    run.add_argument("--backend", default="loop", choices=backends.CHOICES,
                     help="loop: Numba's CPU loop kernels; vectorized: the NumPy reference; "
                          "cuda: an NVIDIA GPU; auto: cuda where a GPU is there and predicted "
                          "faster for this network and batch size, else loop (the banner "
                          "says which and why)")
    run.add_argument("--threads", type=int, default=None, metavar="N",
                     help=f"CPU threads for the loop kernels (default: auto: {AUTO_THREADS}; "
                          f"with --sweep, {AUTO_THREADS_SWEEP})")
    run.add_argument("--save", metavar="PATH", default=None,
                     help="write the trained network and its trainer's state (.npz; "
                          "fastbp.Network.load or fastbp.Trainer.load) (default: not saved)")
    run.add_argument("--progress", action="store_true", help="show a progress bar")
    run.add_argument("--quiet", action="store_true", help="no per-epoch lines")
