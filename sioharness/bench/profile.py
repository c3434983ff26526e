"""Benchmark profiles: which targets, which scenarios, what load shape.

A profile is a small TOML file (``sioharness/profiles/quick.toml``)::

    name = "quick"
    reference = "gevent-dev"
    targets = ["threading-dev", "gevent-dev", "asgi-uvicorn"]
    [load]                      # defaults for every scenario
    users = 20
    duration_s = 8
    [[scenarios]]
    name = "echo"
    [[scenarios]]
    name = "churn"
    users = 10                  # overrides [load]

A target ``gevent-dev-x3`` (or the table ``{target = "gevent-dev",
instances = 3}``) is three gevent instances sharing a private Redis message
queue; ``-x1`` is one instance behind the queue (what Redis alone costs).
The ``processes`` load key runs Locust with that many worker processes.

``gc = ["default", "freeze", "off"]`` runs every (target, scenario) pair once
per garbage-collector setting of the reference target (``--gc``), each in
its own cell named with the variant (``gevent-dev--echo--gc-freeze``; the
default keeps the plain name).

A profile can load the user's own app instead (docs/own-app.md)::

    locustfile = "examples/chat/locustfile.py"   # relative to the profile
    target_cmd = "python examples/chat/app.py --port {port} --async-mode {mode}"
    modes = ["threading", "eventlet", "gevent"]
    [[scenarios]]
    user = "ChatUser"                           # name defaults to "chat"
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Union

from sioharness.bench.own_app import READY_TIMEOUT_S, CommandTarget, TargetCommandError, app_targets
from sioharness.core.load_params import LoadShape, ParamError, load_shape
from sioharness.core.paths import PROFILES_DIR
from sioharness.core.scenarios import SCENARIO_USERS, scenario_of_classes
from target_app.gc_setting import GcSetting
from target_app.settings import SERVERS_BY_MODE

#: what a profile's cells load: targets the runner starts, the user's command, or servers already running
Target = Union["TargetSpec", CommandTarget, "ExternalTarget"]



class ProfileError(ValueError):
    """A profile that cannot be run; the message names the file and the field."""


MAX_INSTANCES = 16
_TARGET = re.compile(r"^(?P<mode>[a-z]+)(?:-(?P<server>(?!x\d)[a-z]+))?(?:-x(?P<instances>\d+))?$")


@dataclass(frozen=True)
class TargetSpec:
    """What the runner starts for a cell: ``instances`` targets of one mode and server.

    With ``message_queue`` they share a private Redis (``--message-queue``)
    the runner starts for the cell; several instances always do.
    """

    mode: str
    server: str
    instances: int = 1
    message_queue: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.instances <= MAX_INSTANCES:
            raise ValueError(f"target {self.mode}-{self.server}: instances must be 1..{MAX_INSTANCES}, "
                             f"got {self.instances}")
        if self.instances > 1 and not self.message_queue:
            object.__setattr__(self, "message_queue", True)  # several instances need the queue

    @property
    def label(self) -> str:
        base = f"{self.mode}-{self.server}"
        return f"{base}-x{self.instances}" if self.message_queue else base

    @classmethod
    def parse(cls, text: str) -> TargetSpec:
        """``mode[-server][-xN]``: ``gevent``, ``gevent-dev``, ``gevent-dev-x3``."""
        match = _TARGET.match(text.strip())
        if match is None:
            raise ValueError(f"target {text!r} must look like mode-server or mode-server-xN (e.g. gevent-dev-x3)")
        mode, server, instances = match["mode"], match["server"], match["instances"]
        if mode not in SERVERS_BY_MODE:
            raise ValueError(f"unknown async mode {mode!r} in target {text!r} "
                             f"(modes: {', '.join(SERVERS_BY_MODE)})")
        server = server or SERVERS_BY_MODE[mode][0]
        if server not in SERVERS_BY_MODE[mode]:
            raise ValueError(f"target {text!r}: {mode} runs under {', '.join(SERVERS_BY_MODE[mode])}")
        if instances is None:
            return cls(mode, server)
        return cls(mode, server, int(instances), message_queue=True)

    @classmethod
    def from_entry(cls, entry: Any) -> TargetSpec:
        """A profile's ``targets`` entry: a string, or ``{target = "...", instances = N}``."""
        if isinstance(entry, str):
            return cls.parse(entry)
        if isinstance(entry, dict):
            unknown = sorted(set(entry) - {"target", "instances"})
            if unknown or not isinstance(entry.get("target"), str):
                raise ValueError(f"a target table needs 'target' (and optionally 'instances'), got {entry!r}")
            spec = cls.parse(entry["target"])
            instances = entry.get("instances", spec.instances)
            if not isinstance(instances, int) or isinstance(instances, bool):
                raise ValueError(f"target {entry['target']!r}: instances must be an integer, got {instances!r}")
            return replace(spec, instances=instances, message_queue=True)
        raise ValueError(f"a target must be a string such as \"gevent-dev\" or a table, got {entry!r}")


@dataclass(frozen=True)
class ExternalTarget:
    """Servers the user runs (``--target-url``); mode and server are read from ``/stats`` when it has them."""

    urls: tuple[str, ...]
    mode: str = "external"
    server: str = "external"
    message_queue: bool = False
    #: process trees to sample (``--target-pid``), besides those found from ``/stats``
    pids: tuple[int, ...] = ()

    @property
    def instances(self) -> int:
        return len(self.urls)

    @property
    def label(self) -> str:
        return "external" if len(self.urls) == 1 else f"external-x{len(self.urls)}"


@dataclass(frozen=True)
class Scenario:
    name: str
    load: LoadShape
    #: the Locust user class; None: the reference scenario's (``echo`` -> ``EchoUser``)
    user: str | None = None
    #: the locustfile the user class lives in; None: the harness's own
    locustfile: Path | None = None

    @property
    def user_class(self) -> str:
        return self.user or SCENARIO_USERS[self.name]

    @classmethod
    def of_user(cls, user: str, load: LoadShape, locustfile: Path | None = None, name: str | None = None) -> Scenario:
        """A scenario that runs one user class: named after it (``ChatUser`` -> ``chat``) unless ``name``."""
        return cls(name or scenario_of_classes([user]), load, user, locustfile)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    #: targets the runner starts; ``--target-url`` puts the user's servers here instead
    targets: tuple[Target, ...]
    scenarios: tuple[Scenario, ...]
    reference: str | None
    source: Path | None = None
    #: the ``[load]`` table: the load of scenarios made from ``--user``
    base_load: LoadShape = LoadShape()
    #: the reference target's ``--gc`` settings; every (target, scenario) pair runs once per setting
    gc: tuple[str, ...] = ("default",)

    def cells(self) -> list[tuple[Target, Scenario]]:
        """Every (target, scenario) pair, scenario-major so each scenario's cells run back to back."""
        return [(t, s) for s in self.scenarios for t in self.targets]

    def cell_runs(self) -> list[tuple[Target, Scenario, str]]:
        """Every (target, scenario, gc setting) the runner runs: each pair's GC settings back to back."""
        return [(t, s, g) for t, s in self.cells() for g in self.gc]

    def estimated_seconds(self, overhead_s: float = 4.0) -> float:
        return sum(s.load.duration_s + overhead_s for _, s, _ in self.cell_runs())

    def with_overrides(self, *, targets: list[str] | None = None, scenarios: list[str] | None = None,
                       gc: list[str] | None = None, **load: Any) -> Profile:
        """A copy narrowed to some targets/scenarios, with other GC settings, and with load values replaced."""
        profile = self
        if gc:
            profile = replace(profile, gc=gc_settings(gc, "--gc"))
        if targets:
            profile = replace(profile, targets=tuple(TargetSpec.parse(t) for t in targets))
        if scenarios:
            unknown = sorted(set(scenarios) - {s.name for s in profile.scenarios})
            if unknown:
                raise ProfileError(f"profile {profile.name!r} has no scenario {', '.join(unknown)} "
                                   f"(it has: {', '.join(s.name for s in profile.scenarios)})")
            profile = replace(profile, scenarios=tuple(s for s in profile.scenarios if s.name in scenarios))
        load = {k: v for k, v in load.items() if v is not None}
        if load:
            try:
                profile = replace(profile, scenarios=tuple(replace(s, load=replace(s.load, **load))
                                                           for s in profile.scenarios))
            except ValueError as exc:
                raise ProfileError(str(exc)) from None
        return profile


def gc_settings(values: Any, where: str) -> tuple[str, ...]:
    """A profile's ``gc`` list (or ``--gc``), checked: each a ``--gc`` setting, none twice."""
    if not (isinstance(values, list) and values and all(isinstance(v, str) for v in values)):
        raise ProfileError(f"{where}: gc must be a list of settings such as [\"default\", \"freeze\", \"off\"]")
    try:
        settings = tuple(str(GcSetting.parse(v)) for v in values)
    except ValueError as exc:
        raise ProfileError(f"{where}: {exc}") from None
    if len(set(settings)) != len(settings):
        raise ProfileError(f"{where}: gc lists a setting twice: {', '.join(settings)}")
    return settings


def _load_shape(values: dict[str, Any], where: str) -> LoadShape:
    try:
        return load_shape(values, where)
    except ParamError as exc:
        raise ProfileError(str(exc)) from None


def command_targets(command: str, modes: list[str] | None, app_name: str = "app",
                    ready_timeout_s: float = READY_TIMEOUT_S) -> tuple[CommandTarget, ...]:
    """One target per async mode for ``--target-cmd`` (one, mode ``app``, without ``{mode}``)."""
    try:
        if not modes:
            if "{mode}" in command:
                raise ProfileError("--target-cmd has {mode}: name the modes to run, e.g. --modes threading,gevent")
            return (CommandTarget(command, server=app_name, ready_timeout_s=ready_timeout_s),)
        if "{mode}" not in command:
            raise ProfileError("--modes needs {mode} in --target-cmd, so each cell starts the app in its mode")
        if len(set(modes)) != len(modes):
            raise ProfileError(f"--modes lists a mode twice: {', '.join(modes)}")
        return tuple(CommandTarget(command, mode=mode, server=app_name, ready_timeout_s=ready_timeout_s)
                     for mode in modes)
    except TargetCommandError as exc:
        raise ProfileError(str(exc)) from None


def _own_app_targets(data: dict[str, Any], source: str) -> tuple[CommandTarget, ...]:
    command, modes, app_name = data.get("target_cmd"), data.get("modes"), data.get("app_name", "app")
    if not isinstance(command, str):
        raise ProfileError(f"{source}: target_cmd must be a string such as \"python app.py --port {{port}}\"")
    if modes is not None and not (isinstance(modes, list) and all(isinstance(m, str) and m for m in modes)):
        raise ProfileError(f"{source}: modes must be a list of names such as [\"threading\", \"gevent\"]")
    if not isinstance(app_name, str) or not app_name:
        raise ProfileError(f"{source}: app_name must be a non-empty string")
    if data.get("targets"):
        raise ProfileError(f"{source}: targets and target_cmd exclude each other")
    try:
        return command_targets(command, modes, app_name)
    except ProfileError as exc:
        message = str(exc).replace("--target-cmd", "target_cmd").replace("--modes", "modes")
        raise ProfileError(f"{source}: {message}") from None


def _app_targets(data: dict[str, Any], source: str, base_dir: Path | None) -> tuple[CommandTarget, ...]:
    """``app = "app.py:socketio"`` (a file relative to the profile), ``modes``, ``app_servers``, ``app_nodelay``."""
    spec, modes, servers = data["app"], data.get("modes"), data.get("app_servers")
    app_name, nodelay = data.get("app_name", "app"), data.get("app_nodelay", False)
    if "target_cmd" in data or data.get("targets"):
        raise ProfileError(f"{source}: app excludes target_cmd and targets")
    if not isinstance(spec, str) or not spec:
        raise ProfileError(f"{source}: app must be a string such as \"app.py:socketio\"")
    for key, value in (("modes", modes), ("app_servers", servers)):
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
            raise ProfileError(f"{source}: {key} must be a list of names such as [\"gevent\"]")
    if not isinstance(app_name, str) or not app_name or not isinstance(nodelay, bool):
        raise ProfileError(f"{source}: app_name must be a non-empty string and app_nodelay true or false")
    where, sep, obj = spec.rpartition(":")
    if sep and (where.endswith(".py") or "/" in where) and not Path(where).is_absolute():
        spec = f"{(base_dir or Path.cwd()) / where}:{obj}"
    try:
        return app_targets(spec, modes=modes, servers=servers, app_name=app_name, nodelay=nodelay)
    except TargetCommandError as exc:
        raise ProfileError(f"{source}: {str(exc).replace('--app-server', 'app_servers').replace('--app', 'app')}") \
            from None


def parse_profile(data: dict[str, Any], source: str = "<profile>", base_dir: Path | None = None) -> Profile:
    known = {"name", "description", "reference", "targets", "load", "scenarios", "locustfile", "target_cmd",
             "modes", "app_name", "gc", "app", "app_servers", "app_nodelay"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProfileError(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    targets: tuple[Target, ...]
    own_app = "target_cmd" in data or "app" in data
    if "app" in data:
        targets = _app_targets(data, source, base_dir)
    elif "target_cmd" in data:
        targets = _own_app_targets(data, source)
    else:
        try:
            targets = tuple(TargetSpec.from_entry(t) for t in data.get("targets", []))
        except ValueError as exc:
            raise ProfileError(f"{source}: {exc}") from None
    if not targets:
        raise ProfileError(f"{source}: 'targets' must list at least one target such as \"gevent-dev\" "
                           "(or target_cmd start your own app)")
    gc = gc_settings(data["gc"], source) if "gc" in data else ("default",)
    if gc != ("default",) and own_app:
        raise ProfileError(f"{source}: gc settings are the reference target's --gc; your own app sets its own "
                           "collector (leave gc out with target_cmd)")
    locustfile = None
    if "locustfile" in data:
        if not isinstance(data["locustfile"], str) or not data["locustfile"]:
            raise ProfileError(f"{source}: locustfile must be a path")
        locustfile = ((base_dir or Path.cwd()) / data["locustfile"]).resolve()
    base = data.get("load", {})
    base_shape = _load_shape(base, f"{source} [load]")
    scenarios = []
    for i, entry in enumerate(data.get("scenarios", [])):
        entry = dict(entry)
        name = entry.pop("name", None)
        user = entry.pop("user", None)
        load = _load_shape(base_shape.profile_values() | entry, f"{source} scenario {name or user!r}")
        if user is not None:
            if not isinstance(user, str) or not user.isidentifier():
                raise ProfileError(f"{source} scenarios[{i}]: user must be a class name, got {user!r}")
            scenarios.append(Scenario.of_user(user, load, locustfile, name=name))
            continue
        if locustfile is not None:
            raise ProfileError(f"{source} scenarios[{i}]: with a locustfile, each scenario names its user class "
                               "(user = \"MyUser\")")
        if name not in SCENARIO_USERS:
            raise ProfileError(f"{source} scenarios[{i}]: name must be one of {', '.join(SCENARIO_USERS)} "
                               f"(or give user = \"MyUser\"), got {name!r}")
        scenarios.append(Scenario(name, load))
    if not scenarios:
        raise ProfileError(f"{source}: at least one [[scenarios]] entry is needed")
    return Profile(
        name=str(data.get("name", Path(source).stem)),
        description=str(data.get("description", "")),
        targets=targets,
        scenarios=tuple(scenarios),
        reference=data.get("reference"),
        base_load=base_shape,
        gc=gc,
    )


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name (``quick``) or any TOML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml") if p.stem != "thresholds"))
        raise ProfileError(f"no profile {name_or_path!r} (no file {path}); shipped profiles: {shipped}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return replace(parse_profile(data, str(path), base_dir=path.resolve().parent), source=path)
