"""The instruction-count A/B: verdicts on synthetic counts, callgrind's tables, and a real two-commit repository.

The live test builds a git repository whose second commit adds a loop to one
handler of a Flask-SocketIO app, and runs ``python -m sioharness.bench.ab --measure
instructions`` on it: the verdict must be "slower" and the per-function diff
must name that handler first.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from sioharness.bench.ab_instructions import judge, short_path, top_changes
from sioharness.bench.callgrind import missing_tools, parse_annotate, short_function
from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT


def test_a_against_a_is_never_slower_and_no_change_only_inside_the_band() -> None:
    rng = random.Random(7)
    for _ in range(200):
        a = [830_000 * (1 + rng.gauss(0, 0.0002)) for _ in range(3)]
        b = [830_000 * (1 + rng.gauss(0, 0.0002)) for _ in range(3)]
        verdict = judge(a, b, 0.005)
        assert verdict.verdict == "no change", verdict
    # Noisy sides (a machine where counts drift) are never "no change" when a run leaves the band.
    assert judge([100.0, 101.0, 99.0], [100.0, 102.0, 98.0], 0.005).verdict == "inconclusive"


def test_a_one_percent_regression_is_slower_and_a_one_percent_gain_faster() -> None:
    rng = random.Random(11)
    for _ in range(200):
        a = [830_000 * (1 + rng.gauss(0, 0.0002)) for _ in range(3)]
        b = [830_000 * 1.01 * (1 + rng.gauss(0, 0.0002)) for _ in range(3)]
        assert judge(a, b, 0.005).verdict == "slower"
        assert judge(b, a, 0.005).verdict == "faster"
    # Beyond the tolerance but overlapping runs: not enough to say.
    assert judge([100.0, 110.0], [105.0, 115.0], 0.01).verdict == "inconclusive"
    with pytest.raises(ValueError):
        judge([], [1.0], 0.01)


def test_callgrind_annotate_tables_become_costs_by_function() -> None:
    text = """\
--------------------------------------------------------------------------------
824,933,916 (100.0%)  PROGRAM TOTALS
--------------------------------------------------------------------------------
136,909,642 (16.60%)  /tmp/build/Python/ceval.c:_PyEval_EvalFrameDefault'2 [/usr/lib/libpython3.11.so.1.0]
 37,559,358 ( 4.55%)  /tmp/build/Python/ceval.c:_PyEval_EvalFrameDefault [/usr/lib/libpython3.11.so.1.0]
        372 ( 0.00%)  /tmp/build/Objects/longobject.c:long_and
"""
    assert parse_annotate(text) == {"ceval.c:_PyEval_EvalFrameDefault [libpython3.11.so.1.0]": 174_469_000,
                                    "longobject.c:long_and": 372}
    assert short_function("???:0x1234 [/lib/x.so]") == "???:0x1234 [x.so]"


def test_the_diff_lists_additions_first_then_removals_and_ignores_crumbs() -> None:
    a = {"f": 10.0, "g": 5.0, "h": 1.0, "gone": 3.0}
    b = {"f": 10.2, "g": 9.0, "h": 1.0, "new": 40.0}
    assert top_changes(a, b) == [("new", 0.0, 40.0), ("g", 5.0, 9.0), ("gone", 3.0, 0.0)]


def test_code_files_are_named_alike_on_both_sides(tmp_path: Path) -> None:
    assert short_path(str(tmp_path / "src-a" / "app.py"), tmp_path / "src-a") == "app.py"
    assert short_path("/elsewhere/x.py", tmp_path) == "/elsewhere/x.py"


APP_V1 = '''
from flask import Flask
from flask_socketio import SocketIO, emit

app = Flask(__name__)
socketio = SocketIO(app)


def shout(text):
    return text.upper()


@socketio.on("echo")
def on_echo(data):
    return data


@socketio.on("chat")
def on_chat(message):
    emit("chat_reply", {"data": {"text": shout(message.get("text", ""))}})
    return "ok"


if __name__ == "__main__":
    socketio.run(app, port=5123)
'''
APP_V2 = APP_V1.replace('''def on_echo(data):
    return data''', '''def on_echo(data):
    total = 0
    for i in range(300):
        total += i % 3
    return data''')


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@example.invalid", "PATH": "/usr/bin:/bin"})


@pytest.mark.slow
@pytest.mark.skipif(missing_tools() is not None, reason=missing_tools() or "")
def test_a_loop_added_to_one_handler_is_slower_and_named_first(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text(APP_V1)
    _git(repo, "add", "app.py")
    _git(repo, "commit", "-q", "-m", "an app")
    (repo / "app.py").write_text(APP_V2)
    _git(repo, "commit", "-q", "-am", "a loop in on_echo")
    done = subprocess.run(
        [sys.executable, "-m", "sioharness.bench.ab", "--repo", str(repo), "--base", "HEAD~1", "--head", "HEAD",
         "--app", f"{repo / 'app.py'}:socketio", "--app-mode", "gevent", "--measure", "instructions",
         "--instr-runs", "1", "--instr-operations", "200", "--instr-warmup", "50",
         "--results", str(tmp_path / "results"), "--run-id", "loop"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    run = tmp_path / "results" / "loop"
    result = json.loads((run / "instructions.json").read_text())
    assert result["verdict"] == "slower" and result["ratio"] > 1.05, result["ratio"]
    python = result["sides"]
    added = {name: python["b"]["python_lines"].get(name, 0) - python["a"]["python_lines"].get(name, 0)
             for name in python["b"]["python_lines"]}
    assert max(added, key=added.__getitem__) == "app.py:on_echo"
    markdown = (run / "ab.md").read_text()
    assert "slower" in markdown.splitlines()[0]
    first_row = next(line for line in markdown.splitlines() if line.startswith("| `"))
    assert first_row.startswith("| `app.py:on_echo`"), markdown
    page = (run / "instructions.html").read_text()
    assert "app.py:on_echo" in page and "<script" not in page
