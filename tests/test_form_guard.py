"""sioharness.webui.form_guard on its own: which start-form fields and which requests the web UI accepts."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from locust.argument_parser import default_args_dict, get_parser

from loadtests.wire.safety import require_loopback
from sioharness.webui.form_guard import FormRefused, check_origin, check_swarm_form, is_loopback_name, shown_options


@pytest.fixture(scope="module")
def shown() -> dict[str, argparse.Action]:
    # The harness's options reach Locust's parser through its locustfile's init_command_line_parser listener.
    from loadtests.runtime.options import add_arguments

    parser = get_parser()
    if "emit_rate" not in parser.args_included_in_web_ui:
        add_arguments(parser)
    return shown_options(parser, default_args_dict())


def check(form: dict[str, list[str]], shown: dict[str, argparse.Action], root: str = "") -> None:
    check_swarm_form(form, shown, check_target=require_loopback, results_root=root)


def test_the_form_shows_the_scenario_options_and_hides_the_guard(shown: dict[str, argparse.Action]) -> None:
    assert {"emit_rate", "room_size", "payload_bytes", "target_urls", "results_dir"} <= set(shown)
    assert not {"i_own_this_host", "own_hosts", "target_pid", "run_deadline", "web_host", "master_bind_port"} \
        & set(shown)


def test_a_field_the_form_does_not_show_is_refused_by_name(shown: dict[str, argparse.Action]) -> None:
    check({"host": ["http://127.0.0.1:5000"], "user_count": ["2"], "spawn_rate": ["1"], "emit_rate": ["5"]}, shown)
    for field, value in (("i_own_this_host", "true"), ("own_hosts", "198.51.100.7"), ("web_host", "0.0.0.0"),
                         ("run_deadline", "0"), ("no_such_option", "x")):
        with pytest.raises(FormRefused, match=f"no field '{field}'"):
            check({"user_count": ["2"], field: [value]}, shown)


def test_values_are_checked_as_the_command_line_checks_them(shown: dict[str, argparse.Action]) -> None:
    for field, value, why in (("emit_rate", "-1", "must be >= 0"), ("emit_rate", "nan", "finite number"),
                              ("emit_rate", "inf", "finite number"), ("room_size", "2.5", "room_size"),
                              ("transport", "carrier-pigeon", "must be one of"),
                              ("open_model", "yes", "true or false")):
        with pytest.raises(FormRefused, match=why):
            check({field: [value]}, shown)
    check({"open_model": ["true"], "transport": ["polling"], "room_size": ["4"]}, shown)


def test_every_target_must_pass_the_loopback_guard(shown: dict[str, argparse.Action]) -> None:
    check({"host": ["http://localhost:5000"], "target_urls": ["http://127.0.0.1:5001,http://[::1]:5002"]}, shown)
    with pytest.raises(FormRefused, match="target_urls: refusing to load 198.51.100.7"):
        check({"host": ["http://127.0.0.1:5000"], "target_urls": ["http://127.0.0.1:1,http://198.51.100.7:5999"]},
              shown)
    with pytest.raises(FormRefused, match="host: refusing to load 192.0.2.7"):
        check({"host": ["http://192.0.2.7:5000"]}, shown)


def test_the_results_folder_stays_inside_the_one_the_ui_started_with(
        shown: dict[str, argparse.Action], tmp_path: Path) -> None:
    root = tmp_path / "results" / "ui"
    (root / "cell").mkdir(parents=True)
    for inside in (str(root), str(root / "cell"), str(root / "new" / "sub"), ""):
        check({"results_dir": [inside]}, shown, root=str(root))
    (root / "link").symlink_to(tmp_path)
    for outside in (str(tmp_path / "elsewhere"), str(root / ".." / "other"), str(root / "link" / "x"), "/etc"):
        with pytest.raises(FormRefused, match="results_dir must be"):
            check({"results_dir": [outside]}, shown, root=str(root))
    with pytest.raises(FormRefused, match="started without --results-dir"):
        check({"results_dir": [str(root)]}, shown, root="")


def test_a_state_changing_request_must_come_from_the_ui_itself() -> None:
    own = {"Host": "127.0.0.1:8089", "Origin": "http://127.0.0.1:8089", "Sec-Fetch-Site": "same-origin"}
    check_origin("POST", "/swarm", own, loopback_ui=True)
    check_origin("POST", "/swarm", {"Host": "127.0.0.1:8089"}, loopback_ui=True)  # a script: no Origin
    check_origin("GET", "/", {"Host": "localhost:8089", "Sec-Fetch-Site": "cross-site"}, loopback_ui=True)
    for headers, path in (({"Host": "127.0.0.1:8089", "Origin": "https://evil.example"}, "/swarm"),
                          ({"Host": "127.0.0.1:8089", "Origin": "null"}, "/swarm"),
                          ({"Host": "127.0.0.1:8089", "Sec-Fetch-Site": "cross-site"}, "/swarm"),
                          ({"Host": "127.0.0.1:8089", "Sec-Fetch-Site": "same-site"}, "/socketio/api/report"),
                          ({"Host": "127.0.0.1:8089", "Sec-Fetch-Site": "cross-site"}, "/stop"),
                          ({"Host": "127.0.0.1:8089", "Origin": "http://127.0.0.1:9999"}, "/stats/reset")):
        method = "GET" if path in ("/stop", "/stats/reset") else "POST"
        with pytest.raises(FormRefused, match="another site"):
            check_origin(method, path, headers, loopback_ui=True)


def test_a_loopback_ui_answers_only_loopback_names() -> None:
    """DNS rebinding: evil.example resolving to 127.0.0.1 still sends Host: evil.example."""
    assert is_loopback_name("127.0.0.1:8089") and is_loopback_name("[::1]:8089") and is_loopback_name("localhost")
    assert not is_loopback_name("evil.example:8089") and not is_loopback_name("") \
        and not is_loopback_name("127.0.0.1.evil.example")
    with pytest.raises(FormRefused, match="answers only loopback names"):
        check_origin("GET", "/", {"Host": "evil.example:8089", "Origin": "http://evil.example:8089"},
                     loopback_ui=True)
    check_origin("POST", "/swarm", {"Host": "loadgen.internal:8089", "Origin": "http://loadgen.internal:8089"},
                 loopback_ui=False)
