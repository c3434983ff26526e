"""Target settings and the contract's pure logic (no network)."""
from __future__ import annotations

import pytest

from target_app import contract
from target_app.serve import gunicorn_argv
from target_app.settings import TargetSettings, parse_settings, settings_from_env


def test_defaults_are_safe() -> None:
    settings = parse_settings([], environ={})
    assert settings.host == "127.0.0.1"
    assert settings.cors_allowed_origins is None  # same origin only ([] would turn the origin check off)
    assert settings.auth_token is None


def test_flags_override_env_which_override_defaults() -> None:
    env = {"TARGET_ASYNC_MODE": "gevent", "TARGET_PORT": "6000", "TARGET_PING_INTERVAL": "3"}
    settings = parse_settings(["--port", "7000", "--cors-origins", "http://a, http://b"], environ=env)
    assert (settings.async_mode, settings.port, settings.ping_interval) == ("gevent", 7000, 3.0)
    assert settings.cors_allowed_origins == ["http://a", "http://b"]


def test_env_round_trip_keeps_every_setting() -> None:
    settings = TargetSettings(async_mode="eventlet", server="gunicorn", port=5050, cors_origins=("*",),
                              auth_token="t", max_connections=5000, log_level="info")
    assert settings_from_env(settings.to_env()) == settings
    assert settings.cors_allowed_origins == "*"


def test_asgi_mode_picks_uvicorn() -> None:
    assert parse_settings(["--async-mode", "asgi"], environ={}).server == "uvicorn"


@pytest.mark.parametrize("argv, message", [
    (["--async-mode", "asgi", "--server", "gunicorn"], "runs under uvicorn"),
    (["--async-mode", "gevent", "--server", "uvicorn"], "not 'uvicorn'"),
    (["--port", "70000"], "port must be"),
    (["--ping-interval", "0"], "ping interval must be a finite number > 0"),
    (["--ping-interval", "inf"], "ping interval must be a finite number > 0"),
    (["--max-connections", "0"], "max connections must be >= 1"),
])
def test_bad_settings_name_what_is_wrong(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_settings(argv, environ={})


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="TARGET_PORT='abc'"):
        settings_from_env({"TARGET_PORT": "abc"})


def test_cli_rejects_bad_settings_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    from target_app.__main__ import main

    assert main(["--async-mode", "asgi", "--server", "gunicorn"]) == 2
    assert "runs under uvicorn" in capsys.readouterr().err


@pytest.mark.parametrize("mode, worker", [("threading", "gthread"), ("eventlet", "eventlet"), ("gevent", "gevent")])
def test_gunicorn_runs_one_worker_of_the_matching_class(mode: str, worker: str) -> None:
    argv = gunicorn_argv(TargetSettings(async_mode=mode, server="gunicorn", port=5001))
    assert argv[argv.index("--worker-class") + 1] == worker
    assert argv[argv.index("--workers") + 1] == "1"
    assert argv[argv.index("--bind") + 1] == "127.0.0.1:5001"


def test_auth_check() -> None:
    assert contract.check_auth(None, None)
    assert contract.check_auth({"token": "x"}, "x")
    assert not contract.check_auth({"token": "y"}, "x")
    assert not contract.check_auth("x", "x")


def test_tick_plan_is_clamped() -> None:
    plan = contract.tick_plan({"rate": 1e9, "count": 10**9, "size": 10**9})
    assert plan == contract.TickPlan(contract.MAX_TICK_RATE_HZ, contract.MAX_TICK_COUNT, contract.MAX_TICK_SIZE)
    for rate in (0, 1e-6, float("nan"), float("-inf")):
        with pytest.raises(contract.ContractError, match="rate must be a number >= 0.2 Hz"):
            contract.tick_plan({"rate": rate})
    with pytest.raises(contract.ContractError, match="bad subscribe_ticks payload"):
        contract.tick_plan({"rate": "fast"})
    with pytest.raises(contract.ContractError, match="bad subscribe_ticks payload"):
        contract.tick_plan({"count": 1e400})  # JSON's 1e400 is an infinite float


def test_broadcast_target_and_room_names() -> None:
    assert contract.broadcast_target({"payload": 1}) == (1, None)
    assert contract.broadcast_target({"payload": 1, "room": "r"}) == (1, "r")
    assert contract.broadcast_target("bare") == ("bare", None)
    with pytest.raises(contract.ContractError):
        contract.room_name({"room": "x" * (contract.MAX_ROOM_NAME + 1)})


@pytest.mark.alone  # the wall-clock bound needs a core: a preemption at the deadline overshoots it
def test_handler_cost_is_busy_cpu_for_the_asked_time() -> None:
    import time

    for asked_us in (0.0, 200.0, 2000.0):
        cpu0, wall0 = time.process_time_ns(), time.perf_counter_ns()
        contract.spend_cpu(asked_us)
        cpu_us, wall_us = (time.process_time_ns() - cpu0) / 1000, (time.perf_counter_ns() - wall0) / 1000
        assert asked_us <= wall_us < asked_us + 2000
        assert cpu_us >= 0.5 * asked_us  # CPU spent, not a sleep


@pytest.mark.parametrize("value", ["-1", "inf", "2e6"])
def test_handler_cost_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="handler cost must be 0..1e\\+06 microseconds"):
        parse_settings(["--handler-cost-us", value], environ={})


@pytest.mark.parametrize("value", ["-1", "10000001"])
def test_handler_loop_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="handler loop must be 0..10,000,000 iterations"):
        parse_settings(["--handler-loop", value], environ={})


def test_the_handler_loop_does_the_same_work_at_any_speed() -> None:
    assert parse_settings(["--handler-loop", "57"], environ={}).handler_loop == 57
    assert contract.handler_loop(0) == 0 and contract.handler_loop(3) == (3 + 3 + 3) & 7
