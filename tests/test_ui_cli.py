"""``python -m sioharness.bench.ui`` arguments: what it starts, what it refuses (no processes started)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from sioharness.bench.ui import DEFAULT_RESULTS, ENV_WEB_AUTH, UsageError, build_parser, locust_argv, main, resolve_plan


def plan(*argv: str, environ: dict[str, str] | None = None):
    return resolve_plan(build_parser().parse_args(list(argv)), now=dt.datetime(2026, 11, 26, 3, 15, 0),
                        environ=environ or {})


def test_defaults_are_gevent_dev_on_loopback_8089() -> None:
    p = plan()
    assert (p.mode, p.server, p.target_url) == ("gevent", "dev", None)
    assert (p.web_host, p.web_port, p.web_url) == ("127.0.0.1", 8089, "http://127.0.0.1:8089")
    assert p.run_dir == DEFAULT_RESULTS / "ui-20261126-031500" and p.auth is None and p.processes is None


@pytest.mark.parametrize("argv, expected", [
    (["--target", "eventlet-gunicorn"], ("eventlet", "gunicorn")),
    (["--mode", "asgi"], ("asgi", "uvicorn")),
    (["--mode", "threading", "--server", "gunicorn"], ("threading", "gunicorn")),
    (["--server", "gunicorn"], ("gevent", "gunicorn")),
])
def test_target_choice(argv: list[str], expected: tuple[str, str]) -> None:
    p = plan(*argv)
    assert (p.mode, p.server) == expected


@pytest.mark.parametrize("argv, message", [
    (["--target", "gevent-dev", "--mode", "gevent"], "not both"),
    (["--target", "asgi-dev"], "asgi runs under uvicorn"),
    (["--target-url", "http://127.0.0.1:5000", "--mode", "gevent"], "--mode would start one"),
    (["--target-url", "http://10.1.2.3:5000"], "--i-own-this-host"),
    (["--target-url", "ftp://127.0.0.1"], "must look like http://"),
    (["--processes", "0"], "--processes must be >= 1"),
    (["--web-port", "70000"], "--web-port must be 1..65535"),
    (["--port", "0"], "--port must be 1..65535"),
    (["--web-auth", "nopassword"], "USER:PASSWORD"),
    (["--web-host", "0.0.0.0"], "add --web-auth"),
    (["--spawn-rate", "0"], "--spawn-rate > 0"),
])
def test_bad_arguments_are_named(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        plan(*argv)


def test_a_remote_target_or_a_public_ui_needs_explicit_consent() -> None:
    p = plan("--target-url", "http://10.1.2.3:5000", "--i-own-this-host")
    assert p.target_url == "http://10.1.2.3:5000" and p.mode is None
    assert locust_argv(p, p.target_url)[-1] == "--i-own-this-host"  # Locust's harness asks for it too
    assert "--i-own-this-host" not in locust_argv(plan("--i-own-this-host"), "http://127.0.0.1:5000")
    assert plan("--web-host", "0.0.0.0", "--web-auth", "ann:pw").web_url == "http://127.0.0.1:8089"
    assert plan("--web-host", "0.0.0.0", environ={ENV_WEB_AUTH: "ann:pw"}).auth == "ann:pw"


def test_locust_command_has_the_picker_the_folder_and_no_password(tmp_path: Path) -> None:
    p = plan("--processes", "3", "--web-auth", "ann:s3cret", "--results", str(tmp_path), "--users", "7",
             "--locust-arg=--loglevel=DEBUG")
    argv = locust_argv(p, "http://127.0.0.1:5001")
    joined = " ".join(argv)
    assert "--class-picker" in argv and argv[argv.index("--results-dir") + 1] == str(tmp_path)
    assert argv[argv.index("--processes") + 1] == "3" and argv[argv.index("--users") + 1] == "7"
    assert argv[argv.index("--host") + 1] == "http://127.0.0.1:5001" and "--web-login" in argv
    assert argv[-1] == "--loglevel=DEBUG" and "s3cret" not in joined
    assert "--processes" not in locust_argv(plan(), "http://127.0.0.1:5001")
    assert plan("--locust-arg=--tls-cert=c.pem", "--locust-arg=--tls-key=k.pem").web_url == "https://127.0.0.1:8089"


def test_main_exits_2_on_bad_arguments_and_a_used_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--target-url", "http://192.0.2.1:80"]) == 2
    assert "refusing to load 192.0.2.1" in capsys.readouterr().err
    (tmp_path / "old.txt").write_text("x")
    assert main(["--results", str(tmp_path)]) == 2
    assert "already holds results" in capsys.readouterr().err


def test_a_target_url_where_nothing_answers_fails_before_starting_locust(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    from target_app.process import free_port

    url = f"http://127.0.0.1:{free_port()}"  # bound and released: nothing listens there
    assert main(["--target-url", url, "--results", str(tmp_path / "s")]) == 1
    assert "nothing answers at --target-url" in capsys.readouterr().err
    record = json.loads((tmp_path / "s" / "ui-session.json").read_text())
    assert record["status"] == "failed" and record["command"] is None and record["cells"] == []


@pytest.mark.parametrize("locust_args", [["--locust-arg=--web-host=0.0.0.0"],
                                         ["--locust-arg=--web-host", "--locust-arg=0.0.0.0"],
                                         ["--locust-arg=--master-bind-host=0.0.0.0"],
                                         ["--locust-arg=--results-dir=/elsewhere"]])
def test_a_locust_arg_cannot_reset_what_the_launcher_checks(locust_args: list[str]) -> None:
    """Locust takes the last of a repeated flag: passed through, it would open the UI to every interface."""
    with pytest.raises(UsageError, match="is set by sioharness.bench.ui itself"):
        plan(*locust_args)


def test_worker_processes_meet_their_master_on_loopback_and_a_port_of_its_own() -> None:
    argv = locust_argv(plan("--processes", "2"), "http://127.0.0.1:5001")
    port = argv[argv.index("--master-bind-port") + 1]
    assert argv[argv.index("--master-bind-host") + 1] == "127.0.0.1"
    assert argv[argv.index("--master-port") + 1] == port != "5557"  # a free port, not Locust's shared default


def test_an_app_is_served_by_the_launcher_in_the_mode_asked() -> None:
    from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT

    app = REPO_ROOT / "examples" / "classic" / "app.py"
    p = plan("--app", f"{app}:socketio", "--mode", "eventlet", "--app-server", "gunicorn", "--app-nodelay")
    assert p.target_cmd is not None and p.target_cmd.describes_app
    assert (p.mode, p.server) == ("eventlet", "app-gunicorn")
    assert p.target_cmd.argv(port=1)[-5:] == ["--mode", "eventlet", "--server", "gunicorn", "--nodelay"]
    for argv, message in ((["--target-url", "http://127.0.0.1:5000"], "--app serves your app"),
                          (["--mode", "asgi"], "unknown mode 'asgi'"),
                          (["--app-server", "dev,gunicorn"], "takes one server here")):
        with pytest.raises(UsageError, match=message):
            plan("--app", f"{app}:socketio", *argv)
    with pytest.raises(UsageError, match="go with --app"):
        plan("--app-nodelay")
