"""Every load parameter, declared once: default, bounds, help, where it is set, whether run.json keeps it.

The two dataclasses below are the table. Each field's :func:`param` carries
its metadata; everything else is derived from :data:`PARAMS`:

- the Locust options the harness registers (headless and in the web UI),
  and the parse back from Locust's ``parsed_options``;
- the Locust command line a runner builds for a load (:func:`locust_argv`);
- a profile's ``[load]`` keys and the runners' command-line overrides
  (:func:`add_load_options`, :func:`given_load_options`);
- what ``run.json`` records (``sioharness.core.run_record.RecordedLoad``).

A value is checked in one place (:meth:`Param.check`), with one message
that names the option. Adding a knob is one field here.
"""
from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

TRANSPORTS: tuple[str, ...] = ("websocket", "polling")
#: where a fan-out send's expected deliveries come from (loadtests.runtime.instances resolves "auto")
EXPECTED_FROM: tuple[str, ...] = ("auto", "acks", "roster")
#: the largest payload a user builds (one string, shared by the users of a process)
MAX_PAYLOAD_BYTES = 64 * 2**20
MAX_PROCESSES = 64

ENV_RESULTS_DIR = "LOADTEST_RESULTS_DIR"
ENV_AUTH_TOKEN = "LOADTEST_AUTH_TOKEN"
#: "1" allows non-loopback targets, like --i-own-this-host (containers on a compose network)
ENV_OWN_HOST = "LOADTEST_I_OWN_THIS_HOST"
#: comma-separated hosts allowed besides loopback, like --own-hosts
ENV_OWN_HOSTS = "LOADTEST_OWN_HOSTS"

#: the parameter is one of the harness's own Locust options
CUSTOM = "custom"
#: the parameter is Locust's own option (``--users``, ``--spawn-rate``, ``--run-time``)
BUILTIN = "builtin"

_KINDS: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}


class ParamError(ValueError):
    """A load parameter out of its bounds; the message names the option."""


@dataclass(frozen=True)
class Param:
    """One load parameter (filled in from its dataclass field)."""

    name: str
    kind: type
    default: Any
    help: str
    minimum: float | None = None
    #: an exclusive lower bound (``> above``)
    above: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    #: settable from a profile's ``[load]`` table and the runners' command lines
    profile: bool = True
    #: CUSTOM (the harness's Locust option), BUILTIN (Locust's own) or None (the runner's alone)
    locust: str | None = CUSTOM
    #: shown in Locust's web UI form
    ui: bool = True
    #: kept in run.json's ``load``
    recorded: bool = True
    #: the runners' flag when it is not ``--<name>``
    cli_flag: str | None = None
    #: environment variable the Locust option defaults to
    env: str | None = None
    secret: bool = False
    #: a further check: the problem with a value, or None
    valid: Callable[[Any], str | None] | None = None

    @property
    def flag(self) -> str:
        """The option's name on the runners' command lines (``--duration``, ``--emit-rate``)."""
        return self.cli_flag or "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        """How messages name it: the flag, and the profile key where the two differ."""
        return self.flag if self.cli_flag is None else f"{self.flag} (profile key {self.name})"

    @property
    def locust_flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def _bounds(self) -> str:
        parts = []
        if self.above is not None:
            parts.append(f"> {self.above:g}")
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum:g}..{self.maximum:g}"
        if self.minimum is not None:
            parts.append(f">= {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum:g}")
        return " and ".join(parts)

    def check(self, value: Any) -> Any:
        """``value`` as this parameter's type, within its bounds; ParamError names the option."""
        kind = self.kind
        if kind is bool:
            if not isinstance(value, bool):
                raise ParamError(f"{self.label} must be true or false, got {value!r:.60}")
            return value
        if kind is str:
            if not isinstance(value, str):
                raise ParamError(f"{self.label} must be a string, got {value!r:.60}")
            if self.choices and value not in self.choices:
                raise ParamError(f"{self.label} must be one of {', '.join(self.choices)}, got {value!r:.60}")
        else:
            numeric = (int,) if kind is int else (int, float)
            if isinstance(value, bool) or not isinstance(value, numeric):
                what = "an integer" if kind is int else "a number"
                raise ParamError(f"{self.label} must be {what}, got {value!r:.60}")
            if kind is float:
                value = float(value)
                if not math.isfinite(value):
                    raise ParamError(f"{self.label} must be a finite number, got {value!r}")
            low_ok = (self.minimum is None or value >= self.minimum) and (self.above is None or value > self.above)
            if not low_ok or (self.maximum is not None and value > self.maximum):
                raise ParamError(f"{self.label} must be {self._bounds()}, got {value!r}")
        problem = self.valid(value) if self.valid is not None else None
        if problem:
            raise ParamError(f"{self.label} {problem}, got {value!r:.60}")
        return value

    def parse(self, text: Any) -> Any:
        """A value given as text (a command line, a Locust form, an environment variable), checked."""
        if not isinstance(text, str):
            return self.check(text)
        if self.kind is bool:
            return text.strip().lower() in ("1", "true", "yes", "on")
        if self.kind in (int, float):
            try:
                return self.check(self.kind(text.strip()))
            except ValueError as exc:
                if isinstance(exc, ParamError):
                    raise
                what = "an integer" if self.kind is int else "a number"
                raise ParamError(f"{self.label} must be {what}, got {text!r:.60}") from None
        return self.check(text)

    def argparse_type(self, text: str) -> Any:
        """For ``argparse``'s ``type=``: the message without the flag (argparse names it)."""
        try:
            return self.parse(text)
        except ParamError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(self.label).strip()) from None

    def help_text(self) -> str:
        if self.kind is bool or self.default in ("", None):
            return self.help
        shown = f"{self.default:g}" if isinstance(self.default, float) else str(self.default)
        return f"{self.help} (default {shown})"


def param(default: Any, help: str, **meta: Any) -> Any:
    """A table field: its default and the :class:`Param` metadata (name and type come from the field)."""
    return field(default=default, metadata={"param": (help, meta)})


def _namespace_problem(value: str) -> str | None:
    return None if value.startswith("/") and "," not in value else "must start with '/' and contain no ','"


def _hosts_problem(value: str) -> str | None:
    hosts = [h.strip() for h in value.split(",") if h.strip()]
    if all("/" not in h and " " not in h for h in hosts):
        return None
    return "must be host names or addresses separated by commas"


def _env_text(name: str) -> str:
    return os.environ.get(name, "")


@dataclass(frozen=True)
class LocustOptions:
    """The harness's Locust options: what every scenario user reads."""

    payload_bytes: int = param(64, "Size of the payload string each emit carries", minimum=0,
                               maximum=MAX_PAYLOAD_BYTES)
    emit_rate: float = param(0.0, "Emits per second per sending user; 0 = as fast as acks return", minimum=0)
    room_size: int = param(10, "Users per room in the broadcast and rooms scenarios", minimum=1)
    senders_per_room: int = param(1, "Senders per broadcast room; the rest only listen", minimum=1)
    namespace: str = param("/", "Socket.IO namespace to connect to", valid=_namespace_problem)
    transport: str = param("websocket", "Transport of ReferenceUser (python-socketio); the lean users are "
                                        "websocket-only", choices=TRANSPORTS)
    open_model: bool = param(False, "Pace emits on a fixed schedule (needs --emit-rate) and time them from the "
                                    "intended send time, so a stalled server shows in the percentiles")
    call_timeout: float = param(10.0, "Seconds before an unanswered call fails", above=0)
    drain_timeout: float = param(3.0, "Seconds users wait at stop for a call in flight (then it is a failed "
                                      "UnansweredAtStop sample) and for fan-out deliveries", minimum=0, ui=False)
    expected_from: str = param(
        "auto", "Deliveries a broadcast should cause: 'acks' (the server's recipients, one instance), 'roster' "
                "(this load generator's room members), 'auto' = roster with several --target-urls",
        choices=EXPECTED_FROM)
    fail_fast_after: float = param(5.0, "Stop the run when every connect has failed for this many seconds, exit "
                                        "status 4 (0 = never)", minimum=0, ui=False)
    flush_interval: float = param(2.0, "Seconds between sample shard flushes", above=0, ui=False)
    watchdog_grace: float = param(15.0, "Seconds the watchdog allows beyond run time + stop timeout", minimum=0,
                                  ui=False)
    # The runner sets these per cell (or the user for a plain run); a profile does not.
    auth_token: str = param("", f"Token for the CONNECT auth payload (default: ${ENV_AUTH_TOKEN})",
                            profile=False, recorded=False, secret=True, env=ENV_AUTH_TOKEN)
    results_dir: str = param("", f"Folder for the sample shards (default: ${ENV_RESULTS_DIR}; unset = no "
                                 "recording)", profile=False, recorded=False, env=ENV_RESULTS_DIR)
    run_deadline: float = param(0.0, "Hard deadline in seconds from test start, after which the process flushes "
                                     "and exits; 0 = run time + stop timeout + grace", minimum=0, ui=False,
                                profile=False, recorded=False)
    target_urls: str = param("", "Comma-separated target instances sharing a message queue; user k loads URL k "
                                 "mod N (default: every user loads --host)", profile=False, recorded=False)
    target_pid: int = param(0, "Sample this server process tree (CPU, memory, threads, descriptors) into "
                               "server.csv in --results-dir while the test runs (0 = none)", minimum=0, ui=False,
                            profile=False, recorded=False)
    samples_via_master: bool = param(
        False, "Workers send their samples to the master over Locust's own channel, and the master writes them "
               "into its --results-dir (for workers on other hosts, with no shared folder); set it on the master, "
               "workers follow (default: each process writes its own shards)",
        ui=False, profile=False, recorded=False)
    own_hosts: str = param("", f"Comma-separated hosts you own that may be load targets besides loopback; no "
                               f"other host is (narrower than --i-own-this-host; also ${ENV_OWN_HOSTS})",
                           ui=False, profile=False, recorded=False, env=ENV_OWN_HOSTS, valid=_hosts_problem)
    i_own_this_host: bool = param(False, f"Allow targets outside loopback (127.0.0.0/8, ::1): only for hosts you "
                                         f"own (also ${ENV_OWN_HOST}=1)",
                                  ui=False, profile=False, recorded=False, env=ENV_OWN_HOST)

    def __post_init__(self) -> None:
        for p in PARAMS:
            if hasattr(self, p.name):  # a LocustOptions lacks the runner's own (users, duration, ...)
                object.__setattr__(self, p.name, p.check(getattr(self, p.name)))
        if not 1 <= self.senders_per_room <= self.room_size:
            raise ParamError(f"--senders-per-room must be 1..room size ({self.room_size}), "
                             f"got {self.senders_per_room}")
        if self.open_model and not self.emit_rate > 0:
            raise ParamError("--open-model needs an --emit-rate > 0: the schedule is what latency is measured from")


@dataclass(frozen=True)
class LoadShape(LocustOptions):
    """How hard one cell pushes: the Locust options plus what the runner decides (a profile's ``[load]``)."""

    users: int = param(20, "Simulated users", minimum=1, locust=BUILTIN)
    spawn_rate: float = param(50.0, "Users started per second", above=0, locust=BUILTIN)
    duration_s: float = param(8.0, "Seconds of load per cell", above=0, locust=BUILTIN, cli_flag="--duration")
    warmup_s: float = param(2.0, "Seconds cut from the start of each cell's figures", minimum=0, locust=None,
                            cli_flag="--warmup")
    #: Locust worker processes (``locust --processes``); samples of all are merged
    processes: int = param(1, "Locust worker processes per cell", minimum=1, maximum=MAX_PROCESSES, locust=None)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.warmup_s < self.duration_s:
            raise ParamError(f"--warmup (profile key warmup_s) must be shorter than the duration "
                             f"({self.duration_s:g} s), got {self.warmup_s:g}")

    def profile_values(self) -> dict[str, Any]:
        """The values a profile's ``[load]`` table can set."""
        return {name: getattr(self, name) for name in PROFILE_KEYS}


def _params_of(cls: type) -> tuple[Param, ...]:
    found = []
    for f in fields(cls):
        help, meta = f.metadata["param"]
        found.append(Param(name=f.name, kind=_KINDS[str(f.type)], default=f.default, help=help, **meta))
    return tuple(found)


#: the table: every load parameter, in declaration order
PARAMS: tuple[Param, ...] = _params_of(LoadShape)
BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}
#: a profile's ``[load]`` keys
PROFILE_KEYS: tuple[str, ...] = tuple(p.name for p in PARAMS if p.profile)
RECORDED_KEYS: tuple[str, ...] = tuple(p.name for p in PARAMS if p.recorded)


def locust_default(p: Param) -> Any:
    """A Locust option's default: its environment variable where it has one (text is checked on use)."""
    text = _env_text(p.env) if p.env is not None else ""
    if not text:
        return p.default
    return p.parse(text) if p.kind is bool else text


def add_locust_options(add: Callable[..., Any]) -> None:
    """Register the harness's Locust options with ``add`` (Locust's ``parser.add_argument``).

    Locust's parser takes ``include_in_web_ui`` and ``is_secret`` besides argparse's own.
    """
    for p in PARAMS:
        if p.locust != CUSTOM:
            continue
        extra: dict[str, Any] = {"default": locust_default(p), "help": p.help_text()}
        if not p.ui:
            extra["include_in_web_ui"] = False
        if p.secret:
            extra["is_secret"] = True
        if p.kind is bool:
            add(p.locust_flag, action="store_true", **extra)
        elif p.choices:
            add(p.locust_flag, choices=p.choices, **extra)
        elif p.kind is str:
            add(p.locust_flag, **extra)
        else:
            add(p.locust_flag, type=p.argparse_type, **extra)


def options_from_locust(options: Any) -> dict[str, Any]:
    """The harness's options from Locust's ``parsed_options`` (missing or empty: left to the default).

    The web UI hands its form values over as text, so each is parsed and checked here.
    """
    values: dict[str, Any] = {}
    for p in PARAMS:
        if p.locust != CUSTOM or options is None:
            continue
        value = getattr(options, p.name, None)
        if value is None or value == "":
            continue
        values[p.name] = p.parse(value)
    return values


def locust_argv(load: LoadShape) -> list[str]:
    """The Locust options that make a run apply ``load`` (the profile-settable ones; Locust's own too)."""
    argv: list[str] = []
    for p in PARAMS:
        if not p.profile or p.locust is None:
            continue
        value = getattr(load, p.name)
        if p.name == "duration_s":
            argv += ["--run-time", f"{value:g}s"]
        elif p.kind is bool:
            argv += [p.locust_flag] if value else []
        else:
            argv += [p.locust_flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return argv


def add_load_options(parser: argparse.ArgumentParser | Any, *, skip: Iterable[str] = (),
                     title: str = "the load (every profile [load] key; default: the profile's, else the table's)"
                     ) -> None:
    """Add a runner's overrides: one flag per profile-settable parameter, default None (= not given)."""
    group = parser.add_argument_group(title)
    skipped = set(skip)
    for p in PARAMS:
        if not p.profile or p.name in skipped:
            continue
        if p.kind is bool:
            group.add_argument(p.flag, dest=p.name, action="store_true", default=None, help=p.help)
        else:
            group.add_argument(p.flag, dest=p.name, type=p.argparse_type, default=None,
                               choices=p.choices or None, help=p.help_text())


def given_load_options(args: argparse.Namespace) -> dict[str, Any]:
    """The overrides a runner's command line gave (see :func:`add_load_options`)."""
    return {name: getattr(args, name) for name in PROFILE_KEYS if getattr(args, name, None) is not None}


def load_shape(values: Mapping[str, Any], where: str = "load") -> LoadShape:
    """A :class:`LoadShape` from profile keys; ParamError names ``where`` and an unknown key."""
    unknown = sorted(set(values) - set(PROFILE_KEYS))
    if unknown:
        raise ParamError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(PROFILE_KEYS))})")
    try:
        return LoadShape(**values)
    except ParamError as exc:
        raise ParamError(f"{where}: {exc}") from None


def reference_table() -> str:
    """The parameter table as Markdown (docs/load-generator.md holds this text; a test compares them)."""
    rows = ["| key | flag | default | profile and runners | Locust | web UI | run.json | meaning |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for p in PARAMS:
        if p.env is not None:
            default = f"`${p.env}`" if p.kind is not bool else f"off (`${p.env}=1`)"
        elif p.kind is bool:
            default = "off"
        elif p.default == "":
            default = "none"
        else:
            default = f"`{p.default:g}`" if isinstance(p.default, float) else f"`{p.default}`"
        locust = {CUSTOM: f"`{p.locust_flag}`", BUILTIN: "Locust's own", None: "no"}[p.locust]
        help = p.help.split(" (default")[0].replace("|", "\\|")
        rows.append(f"| `{p.name}` | `{p.flag}` | {default} | {'yes' if p.profile else 'no'} | {locust} | "
                    f"{'yes' if p.ui and p.locust == CUSTOM else 'no'} | {'yes' if p.recorded else 'no'} | {help} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(reference_table(), end="")
