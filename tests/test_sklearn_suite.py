"""scikit-learn's own MLP tests, run against fastbp's estimators.

At test time this copies ``sklearn/neural_network/tests/test_mlp.py`` from the
*installed* scikit-learn (so the test file always matches the scikit-learn it runs
against), rewrites its one import of ``MLPClassifier, MLPRegressor`` to fastbp's, and
runs it with pytest in a subprocess. Every scikit-learn test function is one test here
(``test_sklearn_mlp[<name>]``), judged from the subprocess's JUnit report:

- tests in ``EXPECTED`` as "skip" (need ``loss="poisson"``, or test scikit-learn's
  private state) are skipped in the subprocess, with their reason;
- tests in ``EXPECTED`` as "xfail" (known gaps in fastbp) are strict xfails: once fastbp
  fixes the gap the XPASS fails, so the entry must go;
- every other test, including tests a newer scikit-learn adds, must pass.

Needs scikit-learn (with its tests) in the range the ``test`` extra pins: a new
scikit-learn may add or change tests, so the pin moves together with ``EXPECTED``. The
README's scikit-learn section lists the differences the skips stand for.
"""
import ast
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

PRIVATE = "white-box test of scikit-learn's private state"
POISSON = ("needs MLPRegressor(loss='poisson') (scikit-learn 1.7): fastbp's kernels have no "
           "exponential output and Poisson deviance")

# node-name pattern -> (kind, reason[, scikit-learn versions it applies to, a
# specifier such as ">=1.7"]). A pattern matches the test's whole name with its
# parameters, e.g. "test_mlp_warm_start_no_convergence[lbfgs-MLPClassifier]"; its only
# wildcard is "*" (brackets are literal).
EXPECTED = {
    # (a) a loss fastbp does not have
    "test_mlp_vs_poisson_glm_equivalent[*": ("skip", POISSON, ">=1.7"),
    # (b) deliberate differences / scikit-learn internals
    "test_fit": ("skip", PRIVATE + ": injects coefs_ and optimizer state before fit "
                         "(fastbp's update matches the worked example)"),
    "test_learning_rate_warmstart": ("skip", PRIVATE + " (_optimizer); fastbp's "
                                             "invscaling counts epochs, not samples"),
    "test_adaptive_learning_rate": ("skip", PRIVATE + " (_optimizer); fastbp's adaptive "
                                            "rate does not postpone stopping"),
    # Known gaps: strict xfail (an XPASS fails, so a fixed gap's entry must go), each
    # with its reason and the README line that documents it. None today.
}


def _sklearn_test_file():
    """Path of the installed scikit-learn's test_mlp.py, or None."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        return None
    path = pathlib.Path(spec.origin).parent / "neural_network" / "tests" / "test_mlp.py"
    return path if path.is_file() else None


def _test_names(path):
    """Names of the module-level test functions, read without importing the file."""
    if path is None:
        return []
    tree = ast.parse(path.read_text())
    return [n.name for n in tree.body
            if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]


_IMPORT = re.compile(r"^from\s+sklearn\.neural_network\s+import\s+\(?\s*MLPClassifier\s*,"
                     r"\s*MLPRegressor\s*,?\s*\)?[ \t]*$", re.MULTILINE)


def rewrite(source):
    """The test file with its estimators imported from fastbp instead."""
    # FASTBP_SKLEARN_TARGET: another module to test (research use: a patched copy).
    target = os.environ.get("FASTBP_SKLEARN_TARGET", "fastbp.estimators")
    new, count = _IMPORT.subn(f"from {target} import MLPClassifier, MLPRegressor", source)
    if count != 1:
        raise AssertionError("scikit-learn's test_mlp.py no longer imports MLPClassifier, "
                             "MLPRegressor in one line; update rewrite() in " + __file__)
    stray = [line for line in new.splitlines()
             if re.match(r"\s*(from|import)\s+sklearn\.neural_network", line)]
    if stray:
        raise AssertionError(f"test_mlp.py imports more from sklearn.neural_network: {stray}")
    return new


def _applies(spec):
    if spec is None:
        return True
    import sklearn
    from sklearn.utils.fixes import parse_version
    m = re.fullmatch(r"(>=|<)(\S+)", spec)
    have, want = parse_version(sklearn.__version__), parse_version(m.group(2))
    return have >= want if m.group(1) == ">=" else have < want


# The subprocess's conftest: marks from EXPECTED (passed as JSON), and a stand-in for
# scikit-learn's global_random_seed fixture when sklearn.conftest cannot be loaded.
_CONFTEST = '''
import json, os, pathlib, re
import pytest

EXPECTED = json.loads(pathlib.Path(__file__).with_name("expected.json").read_text())

def pytest_collection_modifyitems(config, items):
    for item in items:
        for pattern, (kind, reason) in EXPECTED.items():
            if re.fullmatch(re.escape(pattern).replace(r"\\*", ".*"), item.name):
                mark = (pytest.mark.skip(reason=reason) if kind == "skip"
                        else pytest.mark.xfail(reason=reason, strict=True))
                item.add_marker(mark)
                break

if os.environ.get("FASTBP_SKLEARN_OWN_SEED_FIXTURE"):
    @pytest.fixture(params=[int(os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED", 42))])
    def global_random_seed(request):
        return request.param
'''


@pytest.fixture(scope="module")
def sklearn_run(tmp_path_factory):
    """Run the rewritten test_mlp.py once; {test function name: [(node, outcome, message)]}."""
    path = _sklearn_test_file()
    if path is None:
        pytest.skip("scikit-learn (with its tests) is not installed")
    work = tmp_path_factory.mktemp("sklearn_mlp")
    (work / "test_sklearn_mlp.py").write_text(rewrite(path.read_text()))
    (work / "conftest.py").write_text(_CONFTEST)
    expected = {k: v[:2] for k, v in EXPECTED.items() if _applies(v[2] if len(v) > 2 else None)}
    (work / "expected.json").write_text(json.dumps(expected))
    (work / "pytest.ini").write_text("[pytest]\naddopts =\n")
    env = dict(os.environ)
    plugin = ["-p", "sklearn.conftest"]
    if importlib.util.find_spec("sklearn.conftest") is None:
        plugin, env["FASTBP_SKLEARN_OWN_SEED_FIXTURE"] = [], "1"
    cmd = [sys.executable, "-m", "pytest", *plugin, "-p", "no:cacheprovider", "-q",
           "-rfEsxX", "--junitxml", str(work / "report.xml"), "test_sklearn_mlp.py"]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                          timeout=1800)
    if not (work / "report.xml").exists():
        pytest.fail(f"the scikit-learn suite did not run:\n{proc.stdout}\n{proc.stderr}")
    results = {}
    for case in ET.parse(work / "report.xml").getroot().iter("testcase"):
        node = case.get("name")
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome, message = child.tag, (child.get("message") or "")[:500]
                if child.tag == "skipped" and child.get("type") == "pytest.xfail":
                    outcome = "xfailed"
        results.setdefault(node.split("[")[0], []).append((node, outcome, message))
    # Surface the subprocess summary in fastbp's own report (pytest -rA / on failure).
    print(proc.stdout[-5000:])
    return results


@pytest.mark.parametrize("name", _test_names(_sklearn_test_file()) or ["<sklearn missing>"])
def test_sklearn_mlp(sklearn_run, name):
    runs = sklearn_run.get(name)
    assert runs, f"{name} was not collected from scikit-learn's test_mlp.py"
    bad = [(node, outcome, msg) for node, outcome, msg in runs
           if outcome in ("failure", "error")]
    if bad:
        pytest.fail("\n".join(f"{node}: {outcome}: {msg}" for node, outcome, msg in bad),
                    pytrace=False)
    if all(outcome == "skipped" for _, outcome, _ in runs):
        pytest.skip("; ".join(sorted({msg for _, _, msg in runs})))
    xfailed = [msg for _, outcome, msg in runs if outcome == "xfailed"]
    if xfailed and len(xfailed) == len(runs):
        pytest.xfail("; ".join(sorted(set(xfailed))))
