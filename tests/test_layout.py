"""The code's shape holds: subpackages import only layers below them (so there is no import cycle), modules stay
small, lines stay short, drawing goes through one module, and nothing outside tests/ imports from tests/.

Every import counts, at module level and inside functions: a lazy import hides a cycle from Python, not from
this test. The layers are those of docs/architecture.md.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "ferkit"

# Lowest first. A subpackage (or top-level module) may import only from layers below its own.
LAYERS = (
    ("errors", "labels", "version"),                 # foundations: import no other ferkit module
    ("records", "files", "sessions", "cluster"),     # the face record; the user's files; ONNX Runtime sessions; Ray
    ("media", "vision", "models", "render"),         # pixels in and out, architectures, drawing
    ("data", "classifier"),                          # data sets; checkpoints and the classifier back-ends
    ("evaluate",),                                   # metrics, calibration, robustness, reports
    ("train", "runtime"),                            # the two directions: training, recognition
    ("web", "batch", "sweep", "testing"),            # the web app; batch jobs and training sweeps on Ray; tests
    ("cli",),
    ("ferkit", "__main__"),                          # the package root and `python -m ferkit`
)
LAYER_OF = {node: level for level, nodes in enumerate(LAYERS) for node in nodes}


def node_of(path: Path) -> str:
    """A file's node: its subpackage (ferkit/train/engine.py → train) or, at the top, its module's name."""
    rel = path.relative_to(PACKAGE)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return "ferkit" if rel.name == "__init__.py" else rel.stem


def imported_nodes(path: Path) -> set[tuple[str, int]]:
    """(node, line) for every ferkit import in a file: absolute or relative, at any depth of the code."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts if path.name == "__init__.py" else rel.parts[:-1])
    package = package[:-1] if package[-1] == "__init__" else package
    found = set()
    for item in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(item, ast.Import):
            names = [alias.name.split(".") for alias in item.names]
        elif isinstance(item, ast.ImportFrom):
            base = package[:len(package) - item.level + 1] if item.level else []
            module = base + (item.module.split(".") if item.module else [])
            names = [module + [alias.name] for alias in item.names] if module == ["ferkit"] else [module]
        for parts in names:
            if parts[0] != "ferkit":
                continue
            is_module = len(parts) > 1 and ((PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file())
            found.add((parts[1] if is_module else "ferkit", item.lineno))
    return found


def import_edges() -> dict[tuple[str, str], str]:
    edges = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = node_of(path)
        for target, line in imported_nodes(path):
            if target != source:
                edges.setdefault((source, target), f"{path.relative_to(REPO)}:{line}")
    return edges


def test_every_node_has_a_layer():
    nodes = {node_of(p) for p in PACKAGE.rglob("*.py")}
    assert nodes <= set(LAYER_OF), f"add {sorted(nodes - set(LAYER_OF))} to LAYERS and docs/architecture.md"


def test_subpackages_import_only_layers_below_their_own():
    upward = [f"{a} -> {b} ({where})" for (a, b), where in import_edges().items()
              if a in LAYER_OF and b in LAYER_OF and LAYER_OF[b] >= LAYER_OF[a]]
    assert not upward, "imports that do not go down a layer:\n" + "\n".join(upward)


def test_there_is_no_import_cycle_between_subpackages():
    graph: dict[str, set[str]] = {}
    for a, b in import_edges():
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}  # 1: on the path being explored, 2: done

    def cycle_from(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state:
                found = cycle_from(nxt, path + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = cycle_from(start, [])
            assert cycle is None, "import cycle: " + " -> ".join(cycle[cycle.index(cycle[-1]):])


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The checks above can fail: a lazy import from vision up to train is caught."""
    fake = tmp_path / "src" / "ferkit"
    for name, text in {"vision/crop.py": "def f():\n    from ferkit.train import engine\n",
                       "train/engine.py": "from ferkit.vision import crop\n", "__init__.py": ""}.items():
        (fake / name).parent.mkdir(parents=True, exist_ok=True)
        (fake / name).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert ("vision", "train") in import_edges()
    with pytest.raises(AssertionError, match="import cycle"):
        test_there_is_no_import_cycle_between_subpackages()
    with pytest.raises(AssertionError, match="vision -> train"):
        test_subpackages_import_only_layers_below_their_own()


def _python_files(*folders) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


def test_no_module_in_src_is_over_450_lines():
    long = [f"{p.relative_to(REPO)}: {n}" for p in _python_files("src")
            if (n := len(p.read_text().splitlines())) > 450]
    assert not long, long


def test_no_line_of_code_is_over_120_characters():
    long = [f"{p.relative_to(REPO)}:{i}" for p in _python_files("src", "tests", "tools", "bench", "experiments")
            for i, line in enumerate(p.read_text().splitlines(), 1) if len(line) > 120]
    assert not long, long


def test_only_render_plotting_chooses_the_matplotlib_backend():
    users = [str(p.relative_to(REPO)) for p in _python_files("src", "tools", "bench", "experiments")
             if 'matplotlib.use(' in p.read_text()]
    assert users == ["src/ferkit/render/plotting.py"], users


def test_nothing_outside_tests_imports_from_tests():
    found = subprocess.run(["git", "grep", "-n", "-E", r"(import|from) +(tests|conftest)\b|/ *\"tests\"|'tests'",
                            "--", "src", "tools", "bench", "experiments"],
                           cwd=REPO, capture_output=True, text=True).stdout
    assert not found.strip(), found


def test_docs_architecture_names_every_layer():
    text = (REPO / "docs" / "architecture.md").read_text()
    missing = [node for node in LAYER_OF if node not in ("ferkit", "__main__") and not re.search(rf"`{node}/?`", text)]
    assert not missing, f"docs/architecture.md does not place {missing}"
