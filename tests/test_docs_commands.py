"""The commands, files and links in README.md and docs/*.md exist.

Reads the fenced code blocks of every page and checks, without running
anything or touching the network:

- ``python -m X`` / ``python3 -m X`` / ``.venv/bin/python -m X``: module X
  resolves from the repository root (as ``importlib.util.find_spec`` would,
  walking the dotted name with the path finder so that no package's
  ``__init__`` runs), and a package has a ``__main__``;
- ``python PATH.py``: the script exists;
- ``make TARGET``: the Makefile has a rule ``TARGET:``;
- ``locust -f PATH``: the locustfile exists;

and, outside code, that every relative Markdown link points to an existing
file (and, for a ``#anchor`` into a Markdown page, to one of its headings).
Every problem is reported as ``file:line: what is wrong``.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 350

# Modules run with -m that are not the harness's own (tools from the venv or the standard library).
EXTERNAL_MODULES = {"pytest", "pip", "venv", "locust"}

FENCE = re.compile(r"^\s*(```|~~~)")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PYTHON = re.compile(r"^(?:\S*/)?python3?(?:\.\d+)?$")
LOCUST = re.compile(r"^(?:\S*/)?locust$")
MAKE_RULE = re.compile(r"^([A-Za-z0-9_.%/-]+(?:[ \t]+[A-Za-z0-9_.%/-]+)*)[ \t]*::?(?!=)")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Line:
    path: Path
    number: int
    text: str

    def where(self) -> str:
        try:
            name = self.path.relative_to(ROOT)
        except ValueError:
            name = self.path
        return f"{name}:{self.number}"


@dataclass(frozen=True)
class Command:
    line: Line
    kind: str  # "module", "script", "make", "locustfile"
    value: str


def doc_files() -> list[Path]:
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def split_lines(path: Path, text: str | None = None) -> Iterator[tuple[Line, bool]]:
    """Each line of a Markdown file, and whether it is inside a fenced code block (fences excluded)."""
    text = path.read_text(encoding="utf-8") if text is None else text
    fence: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        match = FENCE.match(raw)
        if match:
            marker = match.group(1)
            if fence is None:
                fence = marker
                continue
            if marker == fence:
                fence = None
                continue
        yield Line(path, number, raw), fence is not None


def words(text: str) -> list[str]:
    """Shell words of one line, comments dropped; a trailing continuation backslash ignored."""
    text = text.strip()
    if text.startswith("$ "):
        text = text[2:]
    text = text.rstrip("\\").rstrip()
    try:
        tokens = shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote: good enough for the first few words
        tokens = text.split("#", 1)[0].split()
    # `sudo make ...`, `VAR=value python -m ...`
    while tokens and (tokens[0] == "sudo" or ENV_ASSIGNMENT.match(tokens[0])):
        tokens = tokens[1:]
    return tokens


def commands_in(line: Line) -> list[Command]:
    tokens = words(line.text)
    if not tokens:
        return []
    program, args = tokens[0], tokens[1:]
    if PYTHON.match(program):
        for i, arg in enumerate(args):
            if arg == "-m":
                return [Command(line, "module", args[i + 1])] if i + 1 < len(args) else []
            if arg.startswith("-m") and len(arg) > 2:
                return [Command(line, "module", arg[2:])]
            if arg.startswith("-"):
                continue
            return [Command(line, "script", arg)] if arg.endswith(".py") else []
        return []
    if program == "make":
        targets = [a for a in args if not a.startswith("-") and "=" not in a]
        return [Command(line, "make", t) for t in targets]
    if LOCUST.match(program):
        for i, arg in enumerate(args):
            if arg in ("-f", "--locustfile") and i + 1 < len(args):
                return [Command(line, "locustfile", args[i + 1])]
            for prefix in ("-f", "--locustfile="):
                if arg.startswith(prefix) and len(arg) > len(prefix) and arg != "--locustfile":
                    return [Command(line, "locustfile", arg[len(prefix):])]
    return []


def extract_commands(path: Path, text: str | None = None) -> list[Command]:
    found: list[Command] = []
    for line, in_code in split_lines(path, text):
        if in_code:
            found.extend(commands_in(line))
    return found


def all_commands() -> list[Command]:
    return [command for path in doc_files() for command in extract_commands(path)]


# --- checks ----------------------------------------------------------------------------------------


def _inside_root(locations: list[str]) -> bool:
    return any(Path(loc).resolve().is_relative_to(ROOT) for loc in locations)


def resolve_module(name: str, root: Path = ROOT) -> str | None:
    """None when ``python -m name`` would find the module from ``root``, else why not.

    The top-level name goes through ``importlib.util.find_spec`` with ``root``
    first on ``sys.path`` (as ``python -m`` run from ``root`` has it); the rest of
    a dotted name through the path finder on the parent's search locations, so
    no ``__init__`` is executed (``reports`` would import pandas).
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", name):
        return f"{name!r} is not a module name"
    parts = name.split(".")
    saved = list(sys.path)
    sys.path.insert(0, str(root))
    try:
        importlib.invalidate_caches()
        try:
            spec = importlib.util.find_spec(parts[0])
        except ValueError:  # imported without a __spec__ (__main__ of some tool)
            spec = None
        if spec is None:
            return f"module {parts[0]!r} not found from {root}"
        locations = list(spec.submodule_search_locations or [])
        origin_paths = locations or ([spec.origin] if spec.origin else [])
        if not origin_paths or not _inside_root([p for p in origin_paths if p]):
            return f"module {parts[0]!r} resolves outside the repository ({spec.origin or locations})"
        for i in range(1, len(parts)):
            if spec.submodule_search_locations is None:
                return f"{'.'.join(parts[:i])!r} is a module, not a package: no {name!r}"
            spec = importlib.machinery.PathFinder.find_spec(
                ".".join(parts[: i + 1]), list(spec.submodule_search_locations))
            if spec is None:
                return f"module {'.'.join(parts[: i + 1])!r} not found"
        if spec.submodule_search_locations is not None:
            main = importlib.machinery.PathFinder.find_spec(f"{name}.__main__", list(spec.submodule_search_locations))
            if main is None:
                return f"{name!r} is a package without __main__: `python -m {name}` cannot run it"
        return None
    finally:
        sys.path[:] = saved


def make_targets(makefile: Path = ROOT / "Makefile") -> set[str]:
    targets: set[str] = set()
    for raw in makefile.read_text(encoding="utf-8").splitlines():
        if raw.startswith(("\t", "#")) or not raw.strip():
            continue
        match = MAKE_RULE.match(raw)
        if match:
            targets.update(match.group(1).split())
    return targets


def command_problems(commands: list[Command], root: Path = ROOT, targets: set[str] | None = None) -> list[str]:
    targets = make_targets(root / "Makefile") if targets is None else targets
    problems: list[str] = []
    for command in commands:
        where, value = command.line.where(), command.value
        if command.kind == "module":
            if value.split(".")[0] in EXTERNAL_MODULES:
                continue
            why = resolve_module(value, root)
            if why:
                problems.append(f"{where}: `python -m {value}`: {why}")
        elif command.kind == "script":
            if not (root / value).is_file():
                problems.append(f"{where}: `python {value}`: no such file")
        elif command.kind == "make":
            if value not in targets:
                problems.append(f"{where}: `make {value}`: no rule `{value}:` in the Makefile")
        elif command.kind == "locustfile":
            if not (root / value).is_file():
                problems.append(f"{where}: `locust -f {value}`: no such file")
    return problems


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (github-slugger: lower case, punctuation dropped, spaces to -)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result: set[str] = set()
    for line, in_code in split_lines(path):
        match = None if in_code else HEADING.match(line.text)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links_in(path: Path, text: str | None = None) -> Iterator[tuple[Line, str]]:
    for line, in_code in split_lines(path, text):
        if in_code:
            continue
        prose = CODE_SPAN.sub("", line.text)
        for match in INLINE_LINK.finditer(prose):
            yield line, match.group(1)
        reference = REFERENCE_LINK.match(prose)
        if reference:
            yield line, reference.group(1)


def link_problems(path: Path, text: str | None = None, root: Path = ROOT) -> list[str]:
    problems: list[str] = []
    for line, target in links_in(path, text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path.resolve()
        if not destination.exists():
            problems.append(f"{line.where()}: link `{target}`: {file_part} does not exist")
            continue
        if not destination.is_relative_to(root):
            problems.append(f"{line.where()}: link `{target}` leaves the repository")
            continue
        if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            problems.append(f"{line.where()}: link `{target}`: no heading #{anchor} in {destination.name}")
    return problems


# --- the docs --------------------------------------------------------------------------------------


def test_readme_is_short() -> None:
    count = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert count <= README_MAX_LINES, (
        f"README.md has {count} lines, at most {README_MAX_LINES}: move reference text to docs/")


def test_docs_pages_exist() -> None:
    pages = {p.name for p in doc_files()[1:]}
    assert pages >= {"target.md", "load-generator.md", "web-ui.md", "reports.md",
                     "benchmarks-and-ci.md", "docker.md", "scale-out-and-safety.md"}, pages


def test_commands_are_found() -> None:
    """The extraction sees the docs' commands (a check over nothing would pass whatever the docs say)."""
    kinds = {c.kind: 0 for c in all_commands()}
    for c in all_commands():
        kinds[c.kind] += 1
    assert kinds.get("module", 0) >= 10, kinds
    assert kinds.get("make", 0) >= 10, kinds
    assert kinds.get("locustfile", 0) >= 2, kinds


def test_python_modules_resolve() -> None:
    commands = [c for c in all_commands() if c.kind in ("module", "script")]
    problems = command_problems(commands)
    assert not problems, "\n".join(problems)


def test_make_targets_exist() -> None:
    problems = command_problems([c for c in all_commands() if c.kind == "make"])
    assert not problems, "\n".join(problems)


def test_locustfiles_exist() -> None:
    problems = command_problems([c for c in all_commands() if c.kind == "locustfile"])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    problems = link_problems(path)
    assert not problems, "\n".join(problems)


# --- the checks themselves -------------------------------------------------------------------------

BAD_PAGE = """\
# Page

See [the target](docs/no-such-page.md), [here](#page), [gone](#nowhere) and `[code](not-a-link.md)`.

```sh
.venv/bin/python -m scripts.bench --profile quick   # renamed long ago
python3 -m sioharness.bench
python -m reports results/x
sudo make docker-base
make no-such-target VAR=1
make test PYTEST_ARGS="-m 'not slow'"
locust -f loadtests/locustfile.py --headless
.venv/bin/python benchmarks/no_such_script.py --samples 10
python -m pytest -q
```

[ref]: missing/file.md
"""


def test_checks_report_file_and_line(tmp_path: Path) -> None:
    page = tmp_path / "PAGE.md"
    page.write_text(BAD_PAGE, encoding="utf-8")
    commands = extract_commands(page)
    assert [(c.kind, c.value) for c in commands] == [
        ("module", "scripts.bench"), ("module", "sioharness.bench"), ("module", "reports"), ("make", "docker-base"),
        ("make", "no-such-target"), ("make", "test"), ("locustfile", "loadtests/locustfile.py"),
        ("script", "benchmarks/no_such_script.py"), ("module", "pytest"),
    ]
    problems = command_problems(commands, targets={"test", "docker-base"})
    assert len(problems) == 4, problems
    assert problems[0].startswith(f"{page}:6: `python -m scripts.bench`"), problems
    assert problems[1].startswith(f"{page}:10: `make no-such-target`"), problems
    assert problems[2].startswith(f"{page}:12: `locust -f loadtests/locustfile.py`"), problems
    assert problems[3].startswith(f"{page}:13: `python benchmarks/no_such_script.py`"), problems

    links = link_problems(page, root=tmp_path)
    assert len(links) == 3, links
    assert links[0].startswith(f"{page}:3: link `docs/no-such-page.md`"), links
    assert links[1].startswith(f"{page}:3: link `#nowhere`"), links
    assert links[2].startswith(f"{page}:17: link `missing/file.md`"), links


def test_module_resolution() -> None:
    assert resolve_module("sioharness.bench") is None  # a package run through its __main__
    assert resolve_module("sioharness.bench.capacity") is None
    assert resolve_module("reports") is None
    assert "not found" in (resolve_module("scripts.bench") or "")
    assert "without __main__" in (resolve_module("sioharness.core") or "")
    assert "not found" in (resolve_module("bench") or "")  # the harness's packages are sioharness.*
    assert "outside the repository" in (resolve_module("json") or "")


def test_github_slugs() -> None:
    assert github_slug("Web UI (`make ui`)") == "web-ui-make-ui"
    slug = github_slug("The proxy: `docker compose --profile scaleout`")
    assert slug == "the-proxy-docker-compose---profile-scaleout"
    assert github_slug("The harness's own benchmarks") == "the-harnesss-own-benchmarks"
    assert github_slug("summary.json (schema 1)") == "summaryjson-schema-1"
