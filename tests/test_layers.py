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

#: package (or top-level module) -> layer; lower layers know nothing of higher ones. The harness's own
#: packages sit under ``sioharness`` and count as ``sioharness.<name>``.
LAYERS: dict[str, int] = {
    "sioharness.core": 0,
    "target_app": 1, "loadtests": 1, "reports": 1,
    "sioharness.webui": 2,
    "sioharness.bench": 3, "sioharness.locustfile": 3,
    "sioharness.dockertools": 4, "locustfile": 4,
    "sioharness.cli": 5, "benchmarks": 5, "examples": 5,
}
#: the namespace whose packages each have a layer of their own
NAMESPACE = "sioharness"


def layer_key(module: str) -> str:
    """The LAYERS key of a dotted module name: ``sioharness.bench.ab`` -> ``sioharness.bench``, ``reports.x`` ->
    ``reports``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == NAMESPACE and len(parts) > 1 else parts[0]


def imported_names(source: str) -> list[tuple[int, str]]:
    """(line, layer key) of every absolute import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, layer_key(alias.name)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, layer_key(node.module)))
    return found


def owner_of(path: Path, root: Path) -> str:
    """The package (or top-level module) a file belongs to, as a LAYERS key."""
    return layer_key(".".join(path.relative_to(root).with_suffix("").parts))


def upward_imports(root: Path, layers: dict[str, int] = LAYERS) -> list[str]:
    """``file:line: a imports b`` for each import that does not go down a layer."""
    problems = []
    for name in sorted(layers):
        where = root.joinpath(*name.split("."))
        files = sorted(where.rglob("*.py")) if where.is_dir() else [where.with_suffix(".py")]
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
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", NAMESPACE}
    packages |= {f"{NAMESPACE}.{p.parent.name}" for p in REPO.glob(f"{NAMESPACE}/*/__init__.py")}
    packages |= {f"{NAMESPACE}.{p.stem}" for p in REPO.glob(f"{NAMESPACE}/*.py")} - {f"{NAMESPACE}.__init__"}
    assert packages - set(LAYERS) == set(), "a new package needs its place in LAYERS (and the README's layers)"


def test_no_module_imports_a_harness_package_by_its_old_top_level_name() -> None:
    """core, bench, webui and dockertools are sioharness.*: a bare name would import a user's package of that name."""
    bare = {"core", "bench", "webui", "dockertools"}
    found = [f"{path.relative_to(REPO)}:{line}: {name}"
             for folder in (NAMESPACE, "target_app", "loadtests", "reports", "benchmarks", "examples", "tests")
             for path in sorted((REPO / folder).rglob("*.py"))
             for line, name in imported_names(path.read_text(encoding="utf-8")) if name in bare]
    assert found == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_upward_import_is_found_wherever_it_hides(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "sioharness/__init__.py": "",
        "sioharness/core/__init__.py": "",
        "sioharness/core/ok.py": "import json\nfrom sioharness.core import files\n",
        # inside a function, and behind TYPE_CHECKING: still an upward import
        "sioharness/core/bad.py": "def f():\n    from reports.metrics import x\n",
        "reports/__init__.py": "",
        "reports/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sioharness.webui.panel\n",
        "reports/sibling.py": "import loadtests\n",  # same layer, other package
        # downward: fine
        "sioharness/webui/__init__.py": "from reports import typed\nfrom sioharness.core import ok\n",
        "sioharness/bench/ab.py": "from sioharness.webui import panel\nfrom sioharness.cli import main\n",
    })
    assert upward_imports(root) == [
        "reports/sibling.py:1: reports (layer 1) imports loadtests (layer 1)",
        "reports/typed.py:3: reports (layer 1) imports sioharness.webui (layer 2)",
        "sioharness/bench/ab.py:2: sioharness.bench (layer 3) imports sioharness.cli (layer 5)",
        "sioharness/core/bad.py:2: sioharness.core (layer 0) imports reports (layer 1)",
    ]


def test_a_top_level_module_has_its_layer(tmp_path: Path) -> None:
    source = "import loadtests\nimport sioharness.webui\nimport sioharness.bench\n"
    root = _tree(tmp_path, {"sioharness/locustfile.py": source})
    assert upward_imports(root) == [
        "sioharness/locustfile.py:3: sioharness.locustfile (layer 3) imports sioharness.bench (layer 3)"]


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
