"""Same-runner A/B of two revisions: a tiny git repository made here, one commit slower than the other."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sioharness.bench import ab
from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT

pytestmark = pytest.mark.slow

APP = '''
import argparse
import time

from gevent import monkey

monkey.patch_all()

from flask import Flask  # noqa: E402
from flask_socketio import SocketIO  # noqa: E402

COST_US = {cost}

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int)
args = parser.parse_args()
app = Flask(__name__)
socketio = SocketIO(app, async_mode="gevent")


@socketio.on("echo")
def echo(data):
    deadline = time.perf_counter_ns() + COST_US * 1000
    while time.perf_counter_ns() < deadline:
        pass
    return data


socketio.run(app, host="127.0.0.1", port=args.port)
'''


def commit(repo: Path, message: str, text: str) -> None:
    (repo / "app.py").write_text(text)
    subprocess.run(["git", "-C", str(repo), "add", "app.py"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message],
                   check=True)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "app-repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    commit(repo, "fast echo", APP.format(cost=0))
    commit(repo, "echo costs 600 us more", APP.format(cost=600))
    return repo


def run_ab(repo: Path, results: Path, *extra: str) -> int:
    return ab.main(["--repo", str(repo), "--target-cmd", "python app.py --port {port}", "--repeats", "6",
                    "--budget", "0", "--duration", "3", "--warmup", "1", "--users", "4", "--results", str(results),
                    "--run-id", "ab", *extra])


def test_a_slower_commit_is_judged_slower(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_ab(repo, tmp_path, "--base", "HEAD~1", "--head", "HEAD")
    out = capsys.readouterr().out
    assert code == 1, out
    verdicts = {m["metric"]: m for m in json.loads((tmp_path / "ab" / "ab.json").read_text())["metrics"]}
    cpu = verdicts["server CPU s per 1k acks"]
    assert cpu["verdict"] == "slower" and cpu["ratio"] > 1.5 and cpu["ci_low"] > 1.0, cpu
    assert len(cpu["a"]) == len(cpu["b"]) == 6
    assert "**slower**" in (tmp_path / "ab" / "ab.md").read_text()
    assert (tmp_path / "ab" / "ab.html").is_file()
    order = sorted(p.name for p in (tmp_path / "ab").iterdir() if (p / "run.json").is_file())
    assert order == [f"{side}--echo--r0{i}" for side in "ab" for i in range(1, 7)]
    assert "6 pairs" in (tmp_path / "ab" / "ab.md").read_text()
    worktrees = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True).stdout
    assert worktrees.count("\n") == 1, "the worktrees made for the run are removed"


def test_windows_judge_a_slower_commit_slower_with_both_servers_up_at_once(
        repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_ab(repo, tmp_path, "--base", "HEAD~1", "--head", "HEAD", "--method", "windows", "--windows", "2",
                  "--window-s", "0.3", "--window-warmup", "0.3", "--window-clients", "2")
    out = capsys.readouterr().out
    assert code == 1, out
    document = json.loads((tmp_path / "ab" / "ab.json").read_text())
    verdicts = {m["metric"]: m for m in document["metrics"]}
    cpu = verdicts["server CPU s per 1k acks"]
    assert cpu["verdict"] == "slower" and cpu["ratio"] > 1.5 and len(cpu["a"]) == 6, cpu
    assert verdicts["acks/s"]["verdict"] == "slower"
    # Each pair keeps its windows: both sides, alternating, each with its operations and the server's CPU.
    windows = json.loads((tmp_path / "ab" / "pair-01" / "windows.json").read_text())["windows"]
    assert [w["side"] for w in windows] == ["a", "b", "b", "a"]
    assert all(w["operations"] > 0 and w["server_cpu_s"] > 0 for w in windows)
    assert (tmp_path / "ab" / "pair-06" / "target-b.log").is_file()
    assert not any((p / "run.json").is_file() for p in (tmp_path / "ab").iterdir()), "no Locust runs"
    assert "compare.html" not in (tmp_path / "ab" / "ab.html").read_text()
    worktrees = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True).stdout
    assert worktrees.count("\n") == 1


def test_windows_load_an_app_that_replies_by_emit_and_name_an_event_nobody_acknowledges(
        repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An app written the usual way (replies by emit) is measured as it is; an unhandled event is named."""
    commit(repo, "echo replies by emit", APP.format(cost=0).replace("    return data", "    emit('echoed', data)")
           .replace("from flask_socketio import SocketIO", "from flask_socketio import SocketIO, emit"))
    windows = ("--base", "HEAD~1", "--head", "HEAD", "--method", "windows", "--windows", "1", "--window-s", "0.2",
               "--window-warmup", "0")
    run_ab(repo, tmp_path / "emit", *windows)
    captured = capsys.readouterr()
    assert "could not run" not in captured.err, captured.err
    metrics = {m["metric"]: m for m in json.loads((tmp_path / "emit" / "ab" / "ab.json").read_text())["metrics"]}
    assert len(metrics["acks/s"]["b"]) == 6 and min(metrics["acks/s"]["b"]) > 0

    started = time.monotonic()
    code = run_ab(repo, tmp_path / "unhandled", *windows, "--instr-event", "nobody_handles_this")
    captured = capsys.readouterr()
    assert code == 1
    assert "side A could not run" in captured.err and "'nobody_handles_this' was not acknowledged" in captured.err
    assert "--instr-event" in captured.err and "--method runs" in captured.err
    assert time.monotonic() - started < 60, "an unanswered event ends the pair after the answer timeout"


def test_an_unknown_ref_is_one_line(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_ab(repo, tmp_path, "--base", "no-such-branch") == 2
    err = capsys.readouterr().err
    assert "'no-such-branch': no such commit" in err and err.strip().count("\n") == 0


def test_a_dirty_tree_is_refused_when_comparing_refs(repo: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "app.py").write_text((repo / "app.py").read_text() + "\n# uncommitted\n")
    assert run_ab(repo, tmp_path, "--base", "HEAD~1", "--head", "HEAD") == 2
    assert "uncommitted changes" in capsys.readouterr().err


def test_a_revision_whose_server_does_not_start_keeps_the_other_sides_results(
        repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit(repo, "broken", "raise SystemExit('this revision cannot start')\n")
    code = run_ab(repo, tmp_path, "--base", "HEAD~1", "--head", "HEAD")
    captured = capsys.readouterr()
    assert code == 1
    assert "side B could not run" in captured.err and "this revision cannot start" in captured.out + captured.err
    # The pair that found B broken is the last: A's run of it is kept, and no more are made.
    kept = [p for p in (tmp_path / "ab").glob("a--echo--r*") if list(p.glob("samples-*.parquet"))]
    assert len(kept) == 1, "side A's run is kept"
    assert "a side could not run" in (tmp_path / "ab" / "ab.md").read_text()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_run_in_flight_and_still_judges_and_cleans_up(repo: Path, tmp_path: Path,
                                                                        sig: signal.Signals) -> None:
    """What CI sends on cancel (SIGTERM) and Ctrl-C: ab.md for the pairs so far, no worktree left, exit 130."""
    argv = [sys.executable, "-m", "sioharness.bench.ab", "--repo", str(repo),
            "--target-cmd", "python app.py --port {port}",
            "--base", "HEAD~1", "--head", "HEAD", "--duration", "30", "--warmup", "1", "--users", "2",
            "--results", str(tmp_path), "--run-id", "ab"]
    ab_run = subprocess.Popen(argv, cwd=REPO_ROOT, env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_cell = tmp_path / "ab" / "a--echo--r01"
    try:
        # Signal once the first run's Locust is recording (its first shard), whatever start-up took.
        deadline = time.monotonic() + 120
        while not list(first_cell.glob("samples-*.parquet")):
            assert ab_run.poll() is None and time.monotonic() < deadline, ab_run.communicate()
            time.sleep(0.2)
        ab_run.send_signal(sig)
        out, err = ab_run.communicate(timeout=120)
    finally:
        if ab_run.poll() is None:
            ab_run.kill()
            ab_run.wait()
    assert ab_run.returncode == 130, err[-3000:]  # sioharness.core.exit_codes.EXIT_INTERRUPTED
    assert "Traceback" not in err, err[-3000:]
    assert json.loads((first_cell / "run.json").read_text())["status"] == "partial"
    assert "interrupted after 0 complete pairs" in (tmp_path / "ab" / "ab.md").read_text()
    worktrees = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True).stdout
    assert worktrees.count("\n") == 1, worktrees
    assert not (tmp_path / "ab" / "src-a").exists() and not (tmp_path / "ab" / "src-b").exists()
