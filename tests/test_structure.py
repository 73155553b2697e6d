"""The package's structure, read from its source: every module a size one can read, no
module reaching into another's private names, and no circle among the imports that run
when a module loads (function-level imports, made to break such circles, do not count)."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "fastbp"
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))
MAX_LINES = 520  # "about 500"


def _name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _tree(path):
    return ast.parse(path.read_text(), str(path))


def _resolve(module, node):
    """The absolute module a ``from ... import`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    is_package = (PACKAGE / "/".join(base[1:]) / "__init__.py").exists() if len(base) > 1 \
        else True
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p))
def test_no_module_is_too_long_to_read(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{_name(path)} has {lines} lines (at most {MAX_LINES})"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p))
def test_no_module_reads_another_modules_private_names(path):
    module = _name(path)
    tree = _tree(path)
    modules = {}  # local name -> fastbp module it is bound to
    reach_ins = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            if not source.startswith("fastbp"):
                continue
            for alias in node.names:
                if (PACKAGE.parent / (source.replace(".", "/") + "/" + alias.name + ".py")
                        ).exists():
                    modules[alias.asname or alias.name] = f"{source}.{alias.name}"
                elif _is_private(alias.name) and source != module:
                    reach_ins.append(f"from {source} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fastbp"):
                    modules[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and _is_private(node.attr)
                and modules[node.value.id] != module):
            reach_ins.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    assert not reach_ins, f"{module} reads private names of other modules: {reach_ins}"


def _load_time_imports(path):
    """The fastbp modules a module imports at its top level."""
    module = _name(path)
    found = set()
    for node in _tree(path).body:
        if isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            if source.startswith("fastbp"):
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    found.add(sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists()
                              else source)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fastbp"))
    found.discard(module)
    return found


def test_no_circle_among_load_time_imports():
    graph = {_name(p): _load_time_imports(p) for p in MODULES}
    # A package imports its parent on the way: only edges between modules count.
    state, circles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == "open":
                circles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not circles, f"import circles: {circles}"
