"""Scale-out logic without a network: target lists, instance tags, the room roster, profiles, sampling."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.runtime.fanout import RoomRoster
from loadtests.runtime.instances import on_instance, parse_target_urls, pick_target, resolve_expected_from
from loadtests.runtime.options import LoadSettings
from loadtests.wire.errors import CallTimeout, ConnectionClosed, ConnectRefused
from sioharness.bench.profile import ProfileError, TargetSpec, parse_profile
from sioharness.core.sampler import sample_tree, stats_connected

URLS = ("http://127.0.0.1:5001", "http://127.0.0.1:5002", "http://127.0.0.1:5003")


def test_users_spread_round_robin_over_instances() -> None:
    picks = [pick_target(URLS, k, "http://127.0.0.1:9") for k in range(7)]
    assert [p.index for p in picks] == [0, 1, 2, 0, 1, 2, 0]
    assert picks[4].url == URLS[1] and picks[4].label == "instance 2/3 127.0.0.1:5002"
    lone = pick_target((), 5, "http://127.0.0.1:9")
    assert (lone.url, lone.count) == ("http://127.0.0.1:9", 1)


@pytest.mark.parametrize("text, fragment", [
    ("http://127.0.0.1", "scheme, host and port"),
    ("ws://127.0.0.1:5000", "scheme, host and port"),
    ("http://127.0.0.1:5000,127.0.0.1:5001", "'127.0.0.1:5001' must look like"),
    ("http://127.0.0.1:notaport", "scheme, host and port"),
])
def test_bad_target_urls_are_named(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_target_urls(text)


def test_target_urls_trim_and_split() -> None:
    assert parse_target_urls(" http://127.0.0.1:5001/ ,, http://[::1]:5002") == (
        "http://127.0.0.1:5001", "http://[::1]:5002")
    assert parse_target_urls("") == ()


@pytest.mark.parametrize("exc", [
    ConnectionClosed("server went away"),
    CallTimeout("no ack for call #3 within 10 s"),
    ConnectRefused("/", {"message": "unauthorized"}),
    ValueError("bad push"),
])
def test_instance_tag_keeps_the_class_and_adds_the_instance(exc: BaseException) -> None:
    tagged = on_instance(exc, "instance 2/3 127.0.0.1:5002")
    assert type(tagged) is type(exc)
    assert str(tagged) == f"{exc} [instance 2/3 127.0.0.1:5002]"
    assert str(exc) != str(tagged), "the original is left alone"


def test_roster_counts_joined_members_until_they_leave() -> None:
    roster = RoomRoster()
    for user in (1, 2, 3):
        roster.join("r", user)
    roster.join("r", 2)  # a re-join after a reconnect counts once
    roster.leave("r", 3)
    roster.leave("other", 1)  # unknown room: nothing happens
    assert roster.size("r") == 2 and roster.size("other") == 0
    roster.reset()
    assert roster.size("r") == 0


def test_expected_from_auto_follows_the_number_of_instances() -> None:
    assert resolve_expected_from("auto", 1) == "acks"
    assert resolve_expected_from("auto", 3) == "roster"
    assert resolve_expected_from("acks", 3) == "acks"
    with pytest.raises(ValueError, match="--expected-from must be one of auto, acks, roster"):
        resolve_expected_from("server", 2)


def test_load_settings_take_target_urls_and_refuse_remote_ones() -> None:
    settings = LoadSettings.from_options(argparse.Namespace(target_urls=",".join(URLS)))
    assert settings.urls == URLS and settings.expected_source == "roster"
    with pytest.raises(ValueError, match="refusing to load 192.0.2.7.*--i-own-this-host"):
        LoadSettings.from_options(argparse.Namespace(target_urls="http://192.0.2.7:5000"))
    owned = LoadSettings.from_options(argparse.Namespace(target_urls="http://192.0.2.7:5000", i_own_this_host="true"))
    assert owned.urls == ("http://192.0.2.7:5000",)


def test_target_specs_with_instances() -> None:
    assert TargetSpec.parse("gevent-dev-x3") == TargetSpec("gevent", "dev", 3, True)
    assert TargetSpec.parse("gevent-dev-x1").label == "gevent-dev-x1"  # one instance behind Redis
    assert TargetSpec.parse("asgi-x2").label == "asgi-uvicorn-x2"
    assert TargetSpec("gevent", "dev", 2).message_queue, "several instances always share the queue"
    assert TargetSpec.parse("gevent-dev").label == "gevent-dev"
    with pytest.raises(ValueError, match="instances must be 1..16"):
        TargetSpec.parse("gevent-dev-x0")
    with pytest.raises(ValueError, match="must look like mode-server or mode-server-xN"):
        TargetSpec.parse("gevent-dev-3")


def test_profile_targets_as_tables_and_processes_key() -> None:
    profile = parse_profile({
        "targets": ["gevent-dev", {"target": "gevent-dev", "instances": 2}],
        "load": {"processes": 2}, "scenarios": [{"name": "broadcast"}]})
    assert [t.label for t in profile.targets] == ["gevent-dev", "gevent-dev-x2"]
    assert profile.scenarios[0].load.processes == 2
    for bad, fragment in [({"target": "gevent-dev", "instances": "3"}, "instances must be an integer"),
                          ({"mode": "gevent"}, "a target table needs 'target'")]:
        with pytest.raises(ProfileError, match=fragment):
            parse_profile({"targets": [bad], "scenarios": [{"name": "echo"}]}, "p.toml")
    with pytest.raises(ProfileError, match="--processes must be 1..64"):
        parse_profile({"targets": ["gevent"], "load": {"processes": 0}, "scenarios": [{"name": "echo"}]})


def test_sampler_sums_several_trees_and_skips_the_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        one = sample_tree(os.getpid())
        both = sample_tree([os.getpid(), child.pid])
        assert one and both and both["procs"] >= one["procs"] + 1
        assert both["rss_bytes"] > one["rss_bytes"]
    finally:
        child.kill()
        child.wait()
    gone = sample_tree([child.pid, os.getpid()])
    assert gone and gone["procs"] >= 1
    assert sample_tree([child.pid]) is None


def test_connected_probe_sums_what_answers() -> None:
    probe = stats_connected(["http://127.0.0.1:9", "http://127.0.0.1:9"])  # discard port: nothing answers
    assert probe() is None


def test_shipped_scaleout_profile(tmp_path: Path) -> None:
    from sioharness.bench.profile import load_profile

    profile = load_profile("scaleout")
    labels = [t.label for t in profile.targets]
    assert labels[0] == "gevent-dev" and any(t.instances > 1 for t in profile.targets)
    assert {s.name for s in profile.scenarios} >= {"broadcast"}
