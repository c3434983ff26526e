"""The parameter table (sioharness/core/load_params.py) is the one source every place derives from."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from locust.argument_parser import LocustArgumentParser

from loadtests.runtime.options import LoadSettings, add_arguments
from sioharness.bench import ab, capacity, matrix
from sioharness.bench.locust_command import headless_args
from sioharness.bench.profile import parse_profile
from sioharness.core.load_params import (
    BUILTIN,
    BY_NAME,
    CUSTOM,
    PARAMS,
    PROFILE_KEYS,
    LoadShape,
    ParamError,
    given_load_options,
    reference_table,
)
from sioharness.core.run_record import RecordedLoad
from sioharness.dockertools import run as docker_run

REPO = Path(__file__).resolve().parent.parent

#: a value other than the default for every profile-settable parameter, valid together
CHANGED = {
    "payload_bytes": 256, "emit_rate": 7.5, "room_size": 4, "senders_per_room": 2, "namespace": "/bench",
    "transport": "polling", "open_model": True, "call_timeout": 4.0, "drain_timeout": 1.5,
    "expected_from": "roster", "fail_fast_after": 9.0, "flush_interval": 0.5, "watchdog_grace": 30.0,
    "users": 12, "spawn_rate": 6.0, "duration_s": 11.0, "warmup_s": 3.0, "processes": 2,
}


def locust_parser() -> LocustArgumentParser:
    parser = LocustArgumentParser()
    parser.add_argument("--users", type=int, dest="num_users")
    parser.add_argument("--spawn-rate", type=float)
    parser.add_argument("--run-time")
    parser.add_argument("--headless", action="store_true")
    for flag in ("--stop-timeout", "--csv", "--loglevel", "--json-file"):
        parser.add_argument(flag)
    parser.add_argument("--only-summary", action="store_true")
    add_arguments(parser)
    return parser


def test_the_changed_values_cover_every_profile_parameter() -> None:
    assert sorted(CHANGED) == sorted(PROFILE_KEYS)
    assert all(CHANGED[name] != BY_NAME[name].default for name in CHANGED)


def test_a_profile_value_reaches_the_users_through_locusts_command_line(tmp_path: Path) -> None:
    profile = parse_profile({"targets": ["gevent-dev"], "load": CHANGED, "scenarios": [{"name": "echo"}]})
    load = profile.scenarios[0].load
    argv = headless_args(load, results_dir=str(tmp_path))
    options = locust_parser().parse_args(argv)
    settings = LoadSettings.from_options(options)
    for p in PARAMS:
        if p.locust == CUSTOM and p.profile:
            assert getattr(settings, p.name) == CHANGED[p.name], p.name
    assert (options.num_users, options.spawn_rate, options.run_time) == (12, 6.0, "11s")
    assert settings.results_dir == str(tmp_path)
    # run.json keeps every recorded parameter as the cell ran it
    recorded = RecordedLoad.of(load).to_json()
    assert {k: v for k, v in recorded.items()} == {k: CHANGED[k] for k in recorded}
    assert set(recorded) == {p.name for p in PARAMS if p.recorded}


@pytest.mark.parametrize("module", [matrix, ab, docker_run, capacity], ids=lambda m: m.__name__)
def test_every_runner_takes_every_profile_parameter_as_a_flag(module: object) -> None:
    parser = module.build_parser()  # type: ignore[attr-defined]
    skipped = {"sioharness.bench.capacity": {"users", "duration_s"}, "sioharness.dockertools.run": {"processes"}}
    argv: list[str] = []
    for name, value in CHANGED.items():
        p = BY_NAME[name]
        if name in skipped.get(module.__name__, set()):  # type: ignore[attr-defined]
            continue
        argv += [p.flag] if p.kind is bool else [p.flag, str(value)]
    given = given_load_options(parser.parse_args(argv))
    assert given == {k: v for k, v in CHANGED.items() if k in given} and len(given) >= len(CHANGED) - 2


def test_every_runner_starts_from_the_same_defaults() -> None:
    assert docker_run.DockerRunPlan(run_id="x").load == LoadShape()
    assert given_load_options(ab.build_parser().parse_args([])) == {}
    assert given_load_options(matrix.build_parser().parse_args([])) == {}


@pytest.mark.parametrize("name, bad", [
    ("emit_rate", "-1"), ("emit_rate", "nan"), ("payload_bytes", "2.5"), ("room_size", "0"),
    ("call_timeout", "0"), ("transport", "pigeon"), ("processes", "65"), ("namespace", "bench"),
])
def test_a_bad_value_gets_one_message_wherever_it_comes_from(name: str, bad: str) -> None:
    p = BY_NAME[name]
    with pytest.raises(ParamError) as from_text:
        p.parse(bad)
    message = str(from_text.value)
    assert message.startswith(p.label) and repr(bad).strip("'") in message
    # the profile (a TOML value) and the runner's flag say the same
    typed = {"int": int, "float": float}.get(p.kind.__name__, str)
    try:
        value = typed(bad)
    except ValueError:
        value = bad
    if not isinstance(value, str) or p.kind is str:
        with pytest.raises(ParamError) as from_profile:
            LoadShape(**{name: value})
        assert str(from_profile.value).split(",")[0] == message.split(",")[0]
    with pytest.raises(SystemExit):
        matrix.build_parser().parse_args([p.flag, bad])


def test_the_web_ui_hands_over_text_and_it_is_checked_by_the_same_rule() -> None:
    options = argparse.Namespace(emit_rate="2.5", room_size="3", open_model="true", expected_from="acks")
    settings = LoadSettings.from_options(options)
    assert (settings.emit_rate, settings.room_size, settings.open_model) == (2.5, 3, True)
    with pytest.raises(ParamError, match="--room-size must be >= 1"):
        LoadSettings.from_options(argparse.Namespace(room_size="0"))


def test_locust_registers_each_custom_parameter_once_and_no_other() -> None:
    parser = LocustArgumentParser()
    add_arguments(parser)
    flags = [flag for action in parser._actions for flag in action.option_strings if flag != "-h"]
    assert len(flags) == len(set(flags))
    assert {a.dest for a in parser._actions} - {"help"} == {p.name for p in PARAMS if p.locust == CUSTOM}
    assert {p.name for p in PARAMS if p.locust == BUILTIN} == {"users", "spawn_rate", "duration_s"}


def test_the_documented_table_is_the_table() -> None:
    doc = (REPO / "docs" / "load-generator.md").read_text(encoding="utf-8")
    start = doc.index("<!-- parameter table: python -m sioharness.core.load_params -->\n")
    end = doc.index("<!-- end of parameter table -->")
    assert doc[doc.index("\n", start) + 1:end] == reference_table()
