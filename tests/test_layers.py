"""Imports go down the layers only (README, "What is where").

Every module of the harness is read with :mod:`ast` (imports inside
functions and ``TYPE_CHECKING`` blocks count too): a module may import its
own package and packages of lower layers, never a package of its own layer
or above. No module is imported, so the test needs none of the stack.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: package (or top-level module) -> layer; lower layers know nothing of higher ones
LAYERS: dict[str, int] = {
    "core": 0,
    "target_app": 1, "loadtests": 1, "reports": 1,
    "webui": 2,
    "bench": 3, "locustfile": 3,
    "dockertools": 4,
    "benchmarks": 5, "examples": 5,
}


def imported_names(source: str) -> list[tuple[int, str]]:
    """(line, top-level name) of every absolute import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def owner_of(path: Path, root: Path) -> str:
    """The package (or top-level module) a file belongs to."""
    relative = path.relative_to(root)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def upward_imports(root: Path, layers: dict[str, int] = LAYERS) -> list[str]:
    """``file:line: a imports b`` for each import that does not go down a layer."""
    problems = []
    for name in sorted(layers):
        files = sorted((root / name).rglob("*.py")) if (root / name).is_dir() else [root / f"{name}.py"]
        for path in (p for p in files if p.is_file()):
            owner = owner_of(path, root)
            for line, imported in imported_names(path.read_text(encoding="utf-8")):
                if imported == owner or imported not in layers:
                    continue
                if layers[imported] >= layers[owner]:
                    problems.append(f"{path.relative_to(root)}:{line}: {owner} (layer {layers[owner]}) imports "
                                    f"{imported} (layer {layers[imported]})")
    return problems


def test_the_harness_imports_only_downward() -> None:
    assert upward_imports(REPO) == []


#: loadtests' own parts, lower first: the wire client, the Locust runtime, the user API (loadtests/*.py)
LOADTESTS_PARTS = ("loadtests.wire", "loadtests.runtime", "loadtests")


def part_of(module: str) -> int:
    """The layer of a loadtests module within loadtests: 0 wire, 1 runtime, 2 the user API."""
    return next(i for i, part in enumerate(LOADTESTS_PARTS) if module == part or module.startswith(part + "."))


def loadtests_upward_imports(root: Path) -> list[str]:
    problems = []
    for path in sorted((root / "loadtests").rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in (n for n in names if n == "loadtests" or n.startswith("loadtests.")):
                if part_of(name) > part_of(module):
                    problems.append(f"{path.relative_to(root)}:{node.lineno}: {module} imports {name}")
    return problems


def test_loadtests_parts_import_downward_wire_then_runtime_then_the_user_api() -> None:
    assert loadtests_upward_imports(REPO) == []
    assert {p.name for p in (REPO / "loadtests").iterdir() if (p / "__init__.py").is_file()} == {"wire", "runtime"}


def test_every_package_has_a_layer() -> None:
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages - set(LAYERS) == set(), "a new package needs its place in LAYERS (and the README's layers)"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_upward_import_is_found_wherever_it_hides(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "core/__init__.py": "",
        "core/ok.py": "import json\nfrom core import files\n",
        # inside a function, and behind TYPE_CHECKING: still an upward import
        "core/bad.py": "def f():\n    from reports.metrics import x\n",
        "reports/__init__.py": "",
        "reports/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import webui.panel\n",
        "reports/sibling.py": "import loadtests\n",  # same layer, other package
        "webui/__init__.py": "from reports import typed\nfrom core import ok\n",  # downward: fine
    })
    assert upward_imports(root) == [
        "core/bad.py:2: core (layer 0) imports reports (layer 1)",
        "reports/sibling.py:1: reports (layer 1) imports loadtests (layer 1)",
        "reports/typed.py:3: reports (layer 1) imports webui (layer 2)",
    ]


def test_a_top_level_module_has_its_layer(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"locustfile.py": "import loadtests\nimport webui\nimport bench\n"})
    assert upward_imports(root) == ["locustfile.py:3: locustfile (layer 3) imports bench (layer 3)"]


def test_a_wire_module_that_imports_the_runtime_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "loadtests/__init__.py": "from loadtests.runtime import harness\n",
        "loadtests/wire/__init__.py": "",
        "loadtests/wire/client.py": "def f():\n    from loadtests.runtime.harness import Harness\n",
        "loadtests/runtime/__init__.py": "",
        "loadtests/runtime/harness.py": "from loadtests.wire import client\nimport loadtests.users\n",
    })
    assert loadtests_upward_imports(root) == [
        "loadtests/runtime/harness.py:2: loadtests.runtime.harness imports loadtests.users",
        "loadtests/wire/client.py:2: loadtests.wire.client imports loadtests.runtime.harness",
    ]
