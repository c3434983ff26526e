"""The run record (``run.json``): what one cell ran, on what, when, and how it ended.

Every writer (the native cell runner, the web UI's per-test folders, the
Docker runner, a plain ``locust`` run) builds a :class:`RunRecord` and every
reader (the reports, the checks) parses one with :meth:`RunRecord.from_json`,
so the fields, their types and their checks live here alone.

Fields the record does not model (pinned cores, instances, the UI's or
Docker's details) travel in :attr:`RunRecord.extra` and are written at the
top level of the JSON object, as before.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sioharness.core.files import write_json
from sioharness.core.load_params import BY_NAME, RECORDED_KEYS

RUN_JSON = "run.json"
#: the load's own start and stop (Locust's test start and stop), written by the
#: Locust harness so reports time rates over the load, not over process start-up
LOAD_BOUNDS_FILE = "load.json"
SCHEMA_VERSION = 1
RUNNING = "running"
#: how a finished run ended; ``running`` is written before it starts
FINAL_STATUSES: tuple[str, ...] = ("ok", "failed", "partial")
#: epoch nanoseconds are at least this (anything smaller is seconds or milliseconds)
MIN_EPOCH_NS = 10**17


#: the warm-up a run without a planned one gets: its ramp-up, at most this share of the load
MAX_WARMUP_SHARE = 0.25


def ramp_warmup_s(users: int | None, spawn_rate: float | None, duration_s: float) -> float:
    """Seconds cut from the report's steady window: the ramp-up, at most a quarter of the load.

    For runs nobody planned a warm-up for (a web UI test, a plain ``locust``
    run): while users are still arriving, joins and first connects dominate.
    """
    ramp = (users / spawn_rate) if users and spawn_rate and spawn_rate > 0 else 0.0
    return round(min(ramp, MAX_WARMUP_SHARE * duration_s), 3)


class RunRecordError(ValueError):
    """A run record that cannot be trusted; the message names the field."""


def iso(t_ns: int) -> str:
    """Epoch nanoseconds as an ISO 8601 UTC time with milliseconds."""
    return dt.datetime.fromtimestamp(t_ns / 1e9, tz=dt.timezone.utc).isoformat(timespec="milliseconds")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


class RecordedLoad:
    """The load a run applied, as recorded (``run.json`` ``load``); None where not known.

    Its keys are the table's recorded parameters (``sioharness.core.load_params``), read
    and set as attributes (``load.users``); unknown keys in a file are dropped.
    """

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(RECORDED_KEYS))
        if unknown:
            raise TypeError(f"RecordedLoad has no field(s) {', '.join(unknown)}")
        object.__setattr__(self, "_values", {key: values.get(key) for key in RECORDED_KEYS})

    @classmethod
    def of(cls, load: Any, **known: Any) -> RecordedLoad:
        """The recorded parameters of ``load`` (any object with them as attributes), ``known`` replacing some.

        A flat-out load (emit rate 0) records no emit rate.
        """
        values = {key: getattr(load, key) for key in RECORDED_KEYS if hasattr(load, key)}
        values["emit_rate"] = values.get("emit_rate") or None
        return cls(**(values | known))

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values", {})
        if name not in values:
            raise AttributeError(name)
        return values[name]

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._values:
            raise AttributeError(f"RecordedLoad has no field {name!r}")
        self._values[name] = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecordedLoad) and self._values == other._values

    def __repr__(self) -> str:
        return f"RecordedLoad({', '.join(f'{k}={v!r}' for k, v in self.to_json().items())})"

    def copy(self) -> RecordedLoad:
        return RecordedLoad(**self._values)

    def to_json(self) -> dict[str, Any]:
        # Unknown fields stay out, so each writer's record says only what it knows.
        return {key: value for key, value in self._values.items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordedLoad:
        values = {key: value for key, value in data.items() if key in BY_NAME and BY_NAME[key].recorded}
        for key, value in values.items():
            kind = BY_NAME[key].kind
            if value is None:
                continue
            if kind is int and not _is_int(value):
                raise RunRecordError(f"'load.{key}' must be an integer, found {value!r:.60}")
            if kind is float and not _is_number(value):
                raise RunRecordError(f"'load.{key}' must be a finite number, found {value!r:.60}")
            if kind is bool and not isinstance(value, bool):
                raise RunRecordError(f"'load.{key}' must be true or false, found {value!r:.60}")
            if kind is str and not isinstance(value, str):
                raise RunRecordError(f"'load.{key}' must be a string, found {value!r:.60}")
        warmup = values.get("warmup_s")
        if warmup is not None and warmup < 0:
            raise RunRecordError(f"'load.warmup_s' must be a number >= 0, found {warmup!r:.60}")
        return cls(**values)


_STRING_FIELDS = ("run_id", "cell", "status", "reason", "mode", "server", "scenario", "target_url")
_NS_FIELDS = ("started_ns", "ended_ns", "load_started_ns", "load_ended_ns")
_DERIVED = ("started_at", "ended_at")


@dataclass
class RunRecord:
    """One cell's ``run.json``."""

    run_id: str | None = None
    cell: str | None = None
    #: running, then ok, failed or partial
    status: str | None = None
    reason: str | None = None
    mode: str | None = None
    server: str | None = None
    scenario: str | None = None
    load: RecordedLoad = field(default_factory=RecordedLoad)
    command: list[str] = field(default_factory=list)
    target_url: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    #: wall clock of the cell (runner start and end), epoch ns
    started_ns: int | None = None
    ended_ns: int | None = None
    #: wall clock of the load itself (Locust's test start and stop), epoch ns
    load_started_ns: int | None = None
    load_ended_ns: int | None = None
    #: anything else a writer records, written at the top level
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    def updated(self, fields: Mapping[str, Any]) -> RunRecord:
        """A copy with ``fields`` applied: the record's own fields by name, the rest into :attr:`extra`."""
        own = {f.name for f in dataclasses.fields(self)} - {"extra", "load", "schema"}
        changes = {key: value for key, value in fields.items() if key in own}
        extra = self.extra | {key: value for key, value in fields.items() if key not in own}
        return dataclasses.replace(self, **changes, extra=extra)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": self.schema,
            "run_id": self.run_id,
            "cell": self.cell,
            "status": self.status,
            "reason": self.reason,
            "mode": self.mode,
            "server": self.server,
            "scenario": self.scenario,
            "load": self.load.to_json(),
            "command": list(self.command),
            "target_url": self.target_url,
            "versions": self.versions,
            "machine": self.machine,
            "started_at": iso(self.started_ns) if self.started_ns else None,
            "ended_at": iso(self.ended_ns) if self.ended_ns else None,
            "started_ns": self.started_ns,
            "ended_ns": self.ended_ns,
        }
        for key in ("load_started_ns", "load_ended_ns"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        clash = set(self.extra) & set(data)
        if clash:
            raise RunRecordError(f"extra fields {sorted(clash)} would overwrite the record's own")
        return data | self.extra

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        """Parse and check a ``run.json`` object; RunRecordError names the first bad field."""
        if not isinstance(data, dict):
            raise RunRecordError(f"expected a JSON object, found {type(data).__name__}")
        schema = data.get("schema", SCHEMA_VERSION)
        if not _is_int(schema) or schema > SCHEMA_VERSION:
            raise RunRecordError(f"schema {schema!r} is not supported (this version reads schema {SCHEMA_VERSION})")
        for key in (*_STRING_FIELDS, *_DERIVED):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise RunRecordError(f"'{key}' must be a string, found {data[key]!r:.60}")
        for key in _NS_FIELDS:
            value = data.get(key)
            if value is None:
                continue
            if not _is_int(value):
                raise RunRecordError(f"'{key}' must be an integer (epoch nanoseconds), found {value!r:.60}")
            if value < MIN_EPOCH_NS:
                raise RunRecordError(f"'{key}' = {value} is not epoch nanoseconds (seconds or milliseconds?)")
        for begin, end in (("started_ns", "ended_ns"), ("load_started_ns", "load_ended_ns")):
            if _is_int(data.get(begin)) and _is_int(data.get(end)) and data[end] <= data[begin]:
                raise RunRecordError(f"'{end}' ({data[end]}) is not after '{begin}' ({data[begin]})")
        for key in ("load", "versions", "machine"):
            if data.get(key) is not None and not isinstance(data[key], dict):
                raise RunRecordError(f"'{key}' must be an object, found {data[key]!r:.60}")
        command = data.get("command")
        if command is not None and not (isinstance(command, list) and all(isinstance(a, str) for a in command)):
            raise RunRecordError(f"'command' must be a list of strings, found {command!r:.60}")
        own = {"schema", *_STRING_FIELDS, *_DERIVED, *_NS_FIELDS, "load", "command", "versions", "machine"}
        return cls(
            schema=schema,
            **{key: data.get(key) for key in (*_STRING_FIELDS, *_NS_FIELDS)},
            load=RecordedLoad.from_json(data.get("load") or {}),
            command=list(command or []),
            versions=dict(data.get("versions") or {}),
            machine=dict(data.get("machine") or {}),
            extra={key: value for key, value in data.items() if key not in own},
        )

    def write(self, cell_dir: Path) -> Path:
        """Write ``<cell_dir>/run.json`` atomically; returns its path."""
        path = Path(cell_dir) / RUN_JSON
        write_json(path, self.to_json())
        return path

    @classmethod
    def read(cls, cell_dir: Path) -> RunRecord:
        """Read and check ``<cell_dir>/run.json``; OSError when missing, RunRecordError when bad."""
        path = Path(cell_dir) / RUN_JSON
        raw = path.read_bytes()
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise RunRecordError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise RunRecordError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        return cls.from_json(data)
