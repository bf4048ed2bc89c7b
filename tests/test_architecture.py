"""The house rules, read from the code's own imports: one import root, layers that only import downward, no
cycle (docs/architecture.md, "Layers")."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "sopilot"

# Layer of each subpackage: a module may import its own subpackage and any subpackage of a lower layer.
# ingest and retrieval share a layer: both stand on the index and neither needs the other.
LAYERS = {
    "core": 0,
    "index": 1,
    "ingest": 2,
    "retrieval": 2,
    "draft": 3,
    "eval": 4,
    "author": 4,
    "train": 4,
    "api": 5,
    "cli": 6,
}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package_dir: Path = PACKAGE) -> set[str]:
    """Every SOPilot module a file imports, at the top, inside functions and under TYPE_CHECKING alike."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path, package_dir)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "sopilot" or name.startswith("sopilot.")}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_subpackage_has_a_layer() -> None:
    subpackages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert subpackages <= set(LAYERS), f"give {subpackages - set(LAYERS)} a layer in LAYERS and the docs"


def test_imports_only_go_down() -> None:
    wrong = []
    for module, targets in graph().items():
        source = layer_of(module)
        for target in targets:
            dest = layer_of(target)
            if source is None or dest is None or dest == source:
                continue
            if LAYERS[dest] >= LAYERS[source]:
                wrong.append(f"{module} imports {target} ({source} -> {dest})")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(sorted(wrong))


def test_core_imports_nothing_of_sopilot_above_it() -> None:
    for module, targets in graph().items():
        if layer_of(module) == "core":
            assert all(layer_of(t) == "core" for t in targets), (module, targets)


def test_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_import_checker_sees_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The checks above can fail: the parser finds function-level and relative imports."""
    fake = tmp_path / "sopilot" / "core"
    fake.mkdir(parents=True)
    (fake / "a.py").write_text("def f():\n    from sopilot.cli.main import main\n    from . import b\n")
    names = imports_of(fake / "a.py", tmp_path / "sopilot")
    assert {"sopilot.cli.main", "sopilot.core.b"} <= names


@pytest.mark.slow
def test_the_wheel_adds_one_import_name(tmp_path: Path) -> None:
    """Installed, SOPilot adds exactly one top-level import name: ``sopilot``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("sopilot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/", 1)[0] for name in names if ".dist-info/" not in name}
    assert top == {"sopilot"}, top
    assert "sopilot/py.typed" in names
