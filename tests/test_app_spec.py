"""``--app`` specs, the launcher's pieces and the user API's small types: pure logic, no network."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from loadtests.wire.http_session import cookie_header
from sioharness.bench.app_launcher import split_spec
from sioharness.bench.own_app import APP_LAUNCHER, TargetCommandError, app_targets, check_app_spec
from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT

APP = REPO_ROOT / "examples" / "classic" / "app.py"


@pytest.mark.parametrize("spec, parts", [
    ("app.py:socketio", ("app.py", "socketio")),
    ("pkg.module:create_app()", ("pkg.module", "create_app()")),
    ("pkg.module", ("pkg.module", None)),
    ("/srv/app.py", ("/srv/app.py", None)),
])
def test_a_spec_splits_into_where_and_what(spec: str, parts: tuple[str, str | None]) -> None:
    assert split_spec(spec) == parts


def test_a_file_spec_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(APP.parent)
    assert check_app_spec("app.py:socketio") == f"{APP}:socketio"
    assert check_app_spec("mypkg.wsgi:app") == "mypkg.wsgi:app"


@pytest.mark.parametrize("spec, message", [
    ("", "is empty"),
    (":socketio", "before the ':'"),
    ("missing.py:socketio", "no such file"),
    (f"{APP}:socket io", "not an attribute name"),
    ("my-app:socketio", "neither a .py file nor a module name"),
])
def test_a_bad_spec_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(TargetCommandError, match=message):
        check_app_spec(spec)


def test_one_target_per_server_and_mode_with_the_launcher_command() -> None:
    targets = app_targets(f"{APP}:socketio", modes=["eventlet", "gevent"], servers=["dev", "gunicorn"],
                          nodelay=True)
    assert [t.label for t in targets] == ["eventlet-app", "gevent-app", "eventlet-app-gunicorn",
                                          "gevent-app-gunicorn"]
    argv = targets[3].argv(port=5123)
    assert argv[:2] == [sys.executable, str(APP_LAUNCHER)]
    assert argv[2:] == ["--app", f"{APP}:socketio", "--port", "5123", "--mode", "gevent", "--server", "gunicorn",
                        "--nodelay"]
    assert all(t.describes_app for t in targets)
    # Every mode by default, on the dev server.
    assert [t.label for t in app_targets(f"{APP}:socketio")] == ["threading-app", "eventlet-app", "gevent-app"]


def test_braces_in_a_path_are_not_placeholders(tmp_path: Path) -> None:
    odd = tmp_path / "{port} app"
    odd.mkdir()
    (odd / "app.py").write_text("")
    [target] = app_targets(f"{odd / 'app.py'}:socketio", modes=["gevent"])
    assert target.argv(port=1)[3] == f"{odd / 'app.py'}:socketio"
    assert shlex.split(target.command)[0] == "python"


def test_the_apps_own_interpreter_is_used(tmp_path: Path) -> None:
    [target] = app_targets(f"{APP}:socketio", modes=["gevent"], app_python=sys.executable)
    assert target.argv(port=1)[0] == str(Path(sys.executable).absolute())
    with pytest.raises(TargetCommandError, match="not an executable file"):
        app_targets(f"{APP}:socketio", app_python=str(tmp_path / "python"))
    with pytest.raises(TargetCommandError, match="not found on PATH"):
        app_targets(f"{APP}:socketio", app_python="no-such-python-here")


def test_cookies_become_one_header_and_bad_ones_are_refused() -> None:
    assert cookie_header({"session": "abc.def", "theme": "dark"}) == "session=abc.def; theme=dark"
    for bad in ({"a": "b\r\nX-Injected: 1"}, {"a;b": "c"}, {"": "x"}, {"a b": "c"}):
        with pytest.raises(ValueError, match="cannot go into a Cookie header"):
            cookie_header(bad)


def test_acked_is_true_and_not_none() -> None:
    from loadtests import ACKED

    assert ACKED is not None and bool(ACKED) and repr(ACKED) == "ACKED"


def test_an_ab_side_takes_the_app_from_its_own_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sioharness.bench.ab import app_of_side

    repo = tmp_path / "repo"
    (repo / "srv").mkdir(parents=True)
    monkeypatch.chdir(repo)
    side = tmp_path / "side-a"
    assert app_of_side("srv/app.py:socketio", repo, side) == f"{side / 'srv' / 'app.py'}:socketio"
    assert app_of_side(f"{repo}/srv/app.py", repo, side) == f"{side / 'srv' / 'app.py'}"
    # Outside the repository, or a module name: the same for both sides.
    assert app_of_side("/opt/other/app.py:app", repo, side) == "/opt/other/app.py:app"
    assert app_of_side("srv.app:socketio", repo, side) == "srv.app:socketio"


def test_a_profile_names_an_app_relative_to_itself(tmp_path: Path) -> None:
    from sioharness.bench.profile import ProfileError, parse_profile

    (tmp_path / "app.py").write_text("")
    data = {"app": "app.py:socketio", "modes": ["gevent"], "app_servers": ["gunicorn"], "app_nodelay": True,
            "scenarios": [{"name": "echo"}]}
    profile = parse_profile(data, "p.toml", base_dir=tmp_path)
    [target] = profile.targets
    assert target.label == "gevent-app-gunicorn" and f"{tmp_path / 'app.py'}:socketio" in target.argv(port=1)
    for bad, message in (({"app_servers": ["uwsgi"]}, "unknown server 'uwsgi'"),
                         ({"target_cmd": "python x.py {port}"}, "app excludes target_cmd"),
                         ({"modes": "gevent"}, "modes must be a list")):
        with pytest.raises(ProfileError, match=message):
            parse_profile(data | bad, "p.toml", base_dir=tmp_path)


def test_the_launcher_asks_for_gc_pauses_where_the_recorder_looks() -> None:
    from sioharness.bench import app_launcher
    from sioharness.core import gc_pauses

    assert app_launcher.GC_LOG_ENV == gc_pauses.GC_LOG_ENV


def test_the_launcher_asks_for_a_trace_where_the_recorder_looks() -> None:
    from sioharness.bench import app_launcher, trace_recorder

    assert app_launcher.RECORD_ENV == trace_recorder.RECORD_ENV
    from sioharness.core import trace_file

    assert trace_recorder.TRACE_VERSION == trace_file.TRACE_VERSION
