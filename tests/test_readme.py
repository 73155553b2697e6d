"""The README's examples work from a fresh clone: its Python blocks run (in order, in one
namespace, in a temporary folder), its shell commands name commands, options, files and
extras that exist, its two fresh-machine commands are the ones CI runs, and its API
reference names every argument of Network, Trainer and Trainer.fit.

Each Python block says how it is tested in a ``<!-- test: ... -->`` comment before it
(the rules are in tests/test_docs.py): most run here; the few that take seconds of
training are marked slow (``FASTBP_DOCS_ALL=1`` runs them too), those that need an
optional extra skip where it is not installed.
"""
import inspect
import pathlib
import re
import shlex
import traceback

import pytest

from .test_docs import check_marked, markdown_blocks, runnable

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCKS = markdown_blocks(README)
PYTHON = [b for b in BLOCKS if b.lang == "python"]
SHELL = [b for b in BLOCKS if b.lang in ("bash", "sh", "console")]

INSTALL_AND_TRAIN = ("python3 -m venv .venv && . .venv/bin/activate && pip install . && "
                     "fastbp train")
INSTALL_AND_TEST = ('python3 -m venv .venv && . .venv/bin/activate && pip install ".[test]" && '
                    "python -m pytest -q")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """{line of a Python block: None (ran), the reason it did not run, or the traceback of
    its failure}. The blocks run in order in one namespace; after a failure the rest
    depend on what did not run, and are not run."""
    import contextlib
    import io
    import os

    import numpy as np
    folder = tmp_path_factory.mktemp("readme")
    namespace = {"__name__": "__readme__"}
    results, failed = {}, None
    options, here = np.get_printoptions(), os.getcwd()
    os.chdir(folder)
    try:
        for block in PYTHON:
            why = runnable(block)
            if failed is not None:
                results[block.line] = f"not run: the block at line {failed} failed"
            elif why is not None:
                results[block.line] = why
            else:
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        exec(compile(block.text, f"README.md:{block.line}", "exec"), namespace)
                    results[block.line] = None
                except Exception:
                    results[block.line] = traceback.format_exc()
                    failed = block.line
    finally:
        os.chdir(here)
        np.set_printoptions(**options)
    return results


def test_every_python_block_says_how_it_is_tested():
    check_marked(README, BLOCKS)
    assert len(PYTHON) >= 6
    assert sum(b.action == "run" for b in PYTHON) >= 4


@pytest.mark.parametrize("block", PYTHON, ids=[f"line{b.line}" for b in PYTHON])
def test_python_example_runs(block, outcomes):
    outcome = outcomes[block.line]
    if outcome is not None and "Traceback" not in outcome:
        pytest.skip(outcome)
    assert outcome is None, outcome


# -- shell commands -----------------------------------------------------------------------------

def _commands(block):
    """The commands of a shell block: continuation lines joined, comments dropped, split
    at && and ; -- each as its argv, environment assignments first removed."""
    text = block.text.replace("\\\n", " ")
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        command = []
        for word in words + [";"]:
            if word in ("&&", ";", "||"):
                while command and re.fullmatch(r"[A-Z_]+=\S*", command[0]):
                    command.pop(0)
                if command:
                    yield command
                command = []
            else:
                command.append(word)


def _extras():
    text = (ROOT / "pyproject.toml").read_text()
    section = text[text.index("[project.optional-dependencies]"):]
    section = section[:section.index("\n[", 1)]
    return set(re.findall(r"^(\w+) = \[", section, re.M))


def _made_by_readme(path):
    """A bare file name that a Python example of the README writes (name.csv, ...)."""
    stem = pathlib.Path(path).stem
    return "/" not in path and any(stem in b.text for b in PYTHON)


def _check_fastbp(argv, where):
    from fastbp import cli
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["train", *argv]
    try:
        args = cli._parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"{where}: fastbp {' '.join(argv)} is refused by the parser") from exc
    for name in ("data", "test_data"):
        path = getattr(args, name, None)
        if path not in (None, "digits"):
            assert (ROOT / path).exists() or _made_by_readme(path), (
                f"{where}: --{name.replace('_', '-')} {path}: no such file in the "
                "repository, and no example of the README writes it")


def _check(argv, where, extras):
    name = argv[0]
    if name == "fastbp":
        return _check_fastbp(argv[1:], where)
    if name in ("python", "python3"):
        if argv[1:3] == ["-m", "fastbp"]:
            return _check_fastbp(argv[3:], where)
        if argv[1] == "-m":
            assert argv[2] in ("venv", "pytest", "mkdocs"), f"{where}: python -m {argv[2]}"
            return None
        assert (ROOT / argv[1]).is_file(), f"{where}: {argv[1]} is not a file of the repository"
        return None
    if name == "pip":
        assert argv[1] == "install", f"{where}: pip {argv[1]}"
        for target in argv[2:]:
            found = re.fullmatch(r"\.(?:\[(\w+)\])?", target)
            assert found, f"{where}: pip install {target}: the README installs from the clone"
            assert found[1] is None or found[1] in extras, (
                f"{where}: pip install {target}: pyproject.toml has no extra {found[1]!r}")
        return None
    if name == ".":
        assert argv[1] == ".venv/bin/activate", where
        return None
    if name == "asv":
        assert (ROOT / "asv.conf.json").is_file() and argv[1] in ("machine", "run"), where
        return None
    raise AssertionError(f"{where}: {' '.join(argv)}: a command this test does not know")


def test_shell_examples_name_commands_options_and_files_that_exist():
    extras = _extras()
    checked = 0
    for block in SHELL:
        for argv in _commands(block):
            _check(argv, block.where(README), extras)
            checked += 1
    assert checked >= 20


def test_the_two_commands_for_a_fresh_machine_are_the_ones_ci_runs():
    assert INSTALL_AND_TRAIN in README.read_text() and INSTALL_AND_TEST in README.read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install --quiet ".[test]"' in ci and "\npython -m pytest -q\n" in ci


def test_links_to_files_of_the_repository_exist():
    links = re.findall(r"\]\(([^)#]+)\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert local, "the README links to docs/, CONTRIBUTING.md, ..."
    for link in local:
        assert (ROOT / link).exists(), link


@pytest.mark.parametrize("function", ["Network", "Trainer", "Trainer.fit"])
def test_the_api_reference_names_every_argument(function):
    import fastbp
    obj = fastbp
    for part in function.split("."):
        obj = getattr(obj, part)
    text = README.read_text()
    names = [p for p in inspect.signature(obj).parameters if p not in ("self", "X", "Y")]
    missing = [p for p in names if f"`{p}" not in text]
    assert not missing, f"README.md does not describe {function}'s {missing}"


def test_contributing_lists_every_module():
    """CONTRIBUTING.md's layout names every module of the package, one line each."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    layout = text[text.index("## Layout"):text.index("## How it is checked")]
    package = ROOT / "fastbp"
    missing = [str(path.relative_to(ROOT)) for path in sorted(package.rglob("*.py"))
               if "__pycache__" not in path.parts
               and not re.search(rf"^\s+{re.escape(path.name)}\s", layout, re.M)]
    assert not missing, f"CONTRIBUTING.md's layout does not list {missing}"
