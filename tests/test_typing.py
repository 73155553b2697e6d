"""The public API's type hints: mypy passes on the annotated modules, and a program
that uses the API gets the types the API promises -- and an error where it misuses it.

One mypy run (about 10 s: NumPy's stubs dominate) checks both, with a fresh cache in a
temporary folder so that nothing is written into the repository. The configuration is
pyproject.toml's [tool.mypy] (modules without type information are ignored, imports of
fastbp's unannotated modules followed silently).
"""
import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The annotated public modules: pyproject.toml's [tool.mypy] files.
MODULES = ["fastbp/__init__.py", "fastbp/network.py", "fastbp/trainer.py",
           "fastbp/history.py", "fastbp/sweep.py", "fastbp/grid.py", "fastbp/schedules.py",
           "fastbp/preprocessing.py", "fastbp/datasets.py", "fastbp/estimators.py",
           "fastbp/_estimator_base.py"]

# A program using the API. "# reveals: T" asks that mypy infer T for the expression in
# reveal_type(...) on that line; "# error: TEXT" that mypy report an error containing
# TEXT on that line. No other line may have an error.
USAGE = '''
import numpy as np
import fastbp
from fastbp import datasets, grid, schedules
from fastbp.preprocessing import InputScaling

X, y = datasets.load_digits()
reveal_type(X)  # reveals: numpy.ndarray[tuple[Any, ...], numpy.dtype[numpy.floating[Any]]]
net = fastbp.Network([64, 16, 10], activations=["tanh", "softmax"], loss="cross_entropy",
                     seed=np.random.default_rng(0))
net.input_scaling = InputScaling.fit(X)
trainer = fastbp.Trainer(net, optimizer="adam", betas=(0.9, 0.99), threads=None,
                         lr_schedule=schedules.StepDecay(every=5))
history = trainer.fit(X, y, epochs=2, validation_data=(X, y), restore_best=False,
                      callback=lambda epoch, h: h.loss[-1] < 0.1)
reveal_type(history)  # reveals: fastbp.history.History
reveal_type(history.loss)  # reveals: list[float]
reveal_type(net.score(X, y))  # reveals: float
reveal_type(net.gradients(X, y)[0])  # reveals: list[numpy.ndarray[tuple[Any, ...], numpy.dtype[numpy.floating[Any]]]]
reveal_type(fastbp.Trainer.load("t.npz"))  # reveals: fastbp.trainer.Trainer
reveal_type(fastbp.Network.from_fann("t.net"))  # reveals: fastbp.network.Network
sweep = fastbp.Sweep([64, 10], grid=grid.parse_grid("learning_rate=0.1,0.3"), schedule="fullbatch")
result = sweep.fit(X, y, epochs=1)
reveal_type(result.best())  # reveals: int
reveal_type(result.networks)  # reveals: list[fastbp.network.Network | None]
reveal_type(grid.Grid({"seed": [0, 1]})[0])  # reveals: dict[str, Any]
reveal_type(datasets.prepare(X, y).task)  # reveals: str
clf = fastbp.MLPClassifier(hidden_layer_sizes=(8,), class_weight="balanced")
reveal_type(clf.fit(X, y))  # reveals: fastbp.estimators.MLPClassifier
reveal_type(fastbp.MLPRegressor().fit(X, X[:, 0]))  # reveals: fastbp.estimators.MLPRegressor
net.fit(X, y)  # error: "Network" has no attribute "fit"
fastbp.Trainer(net, learning_rate="fast")  # error: Argument "learning_rate" to "Trainer" has incompatible type "str"
trainer.fit(X, y, patience=1.5)  # error: Argument "patience" to "fit" of "Trainer" has incompatible type "float"
'''


def _expected(source):
    reveals, errors = {}, {}
    for number, line in enumerate(source.splitlines(), 1):
        if "# reveals: " in line:
            reveals[number] = line.split("# reveals: ", 1)[1].strip()
        if "# error: " in line:
            errors[number] = line.split("# error: ", 1)[1].strip()
    return reveals, errors


def _normalize(type_text):
    """A revealed type as mypy >= 1.11 spells it (earlier versions prefix builtins and
    write unions as Union[...])."""
    text = type_text.replace("builtins.", "")
    return re.sub(r"Union\[([\w.]+), None\]", r"\1 | None", text)


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (the test extra has it)")
    folder = tmp_path_factory.mktemp("typing")
    usage = folder / "usage.py"
    usage.write_text(USAGE)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(folder / "cache"), "--no-color-output", "--show-error-codes",
         *MODULES, str(usage)],
        capture_output=True, text=True, cwd=ROOT)
    return done, usage


def test_the_annotated_modules_are_the_ones_mypy_is_configured_for():
    config = (ROOT / "pyproject.toml").read_text()
    files = config[config.index("files = [", config.index("[tool.mypy]")):]
    listed = re.findall(r'"(fastbp/[\w/]+\.py)"', files[:files.index("]")])
    assert sorted(listed) == sorted(MODULES)


def test_mypy_passes_on_the_public_api(mypy_run):
    done, usage = mypy_run
    output = done.stdout + done.stderr
    problems = [line for line in output.splitlines()
                if line.startswith("fastbp/") and ": error:" in line]
    assert not problems, output
    assert re.search(r"checked 12 source files", output), output


def test_a_program_using_the_api_gets_its_types_and_its_errors(mypy_run):
    done, usage = mypy_run
    output = done.stdout + done.stderr
    reveals, errors = _expected(USAGE)
    got_reveals, got_errors = {}, {}
    for line in output.splitlines():
        found = re.match(rf"{re.escape(str(usage))}:(\d+): (note|error): (.*)", line)
        if not found:
            continue
        number, kind, text = int(found[1]), found[2], found[3]
        if kind == "note" and text.startswith("Revealed type is "):
            got_reveals[number] = _normalize(text[len("Revealed type is "):].strip('"'))
        elif kind == "error":
            got_errors.setdefault(number, []).append(text)
    assert {n: _normalize(t) for n, t in reveals.items()} == got_reveals, output
    assert set(got_errors) == set(errors), output
    for number, text in errors.items():
        assert any(text in e for e in got_errors[number]), (number, got_errors[number])


def test_the_package_says_it_is_typed():
    """py.typed (PEP 561) beside the code and in the package data that an installation
    copies, so that type checkers read fastbp's hints in programs that use it."""
    assert (ROOT / "fastbp" / "py.typed").is_file()
    config = (ROOT / "pyproject.toml").read_text()
    section = config[config.index("[tool.setuptools.package-data]"):]
    assert re.search(r'^fastbp = \[[^\]]*"py\.typed"', section, re.M), section[:200]
