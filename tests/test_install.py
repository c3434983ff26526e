"""The harness installed from a wheel into a fresh venv, used from a user's project with no checkout.

The wheel is built here from the repository's tracked files (setuptools, no
build isolation: nothing is downloaded). It goes into a new venv with
``--no-deps``; the pinned stack comes from this venv's site-packages through a
``.pth`` line, so the harness itself can only come from the wheel. Every
command runs from a project folder outside the repository, with no
PYTHONPATH, through the ``sioharness`` console script. The project has
packages of its own named ``core``, ``reports``, ``bench`` and ``webui``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest

from target_app.process import free_port
from tests.test_app_launcher_live import PROJECT_FILES, samples_of
from tests.ui_process import running_ui

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding the harness's wheel and nothing else of the repository."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(root / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list((root / "dist").glob("sio_loadharness-*.whl"))
    assert len(wheels) == 1, wheels

    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The stack (Flask-SocketIO, Locust, pandas, ...) from this venv; .pth files there are not run, so
    # this venv's editable install of the checkout does not come along.
    Path(site, "_harness_stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheels[0])],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return env_dir


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A user's project: the classic app and its locustfile, with its own core, reports, bench and webui packages."""
    files = PROJECT_FILES | {"bench/__init__.py": "raise ImportError('the project\\'s own bench, not the harness')\n",
                             "webui/__init__.py": "raise ImportError('the project\\'s own webui, not the harness')\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def user_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return env | {"PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "PYTHONDONTWRITEBYTECODE": "1"}


def sioharness(venv: Path, cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "sioharness"), *args], cwd=cwd, env=user_env(venv),
                          capture_output=True, text=True, timeout=timeout)


def test_the_installed_harness_is_the_wheel_not_the_checkout(venv: Path, project: Path) -> None:
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import loadtests, reports, sioharness, target_app\n"
                            "from sioharness.core import paths\n"
                            "print(sioharness.__file__, loadtests.__file__, reports.__file__, target_app.__file__)\n"
                            "print(paths.CHECKOUT, paths.HARNESS_LOCUSTFILE.is_file(), paths.PROFILES_DIR.is_dir())"],
                           cwd=venv, env=user_env(venv), capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr  # (not from the project: `python -c` puts its folder first)
    files, checkout = where.stdout.splitlines()
    assert all(path.startswith(str(venv)) for path in files.split()), files
    assert checkout == "None True True"
    listing = sioharness(venv, project, "--help")
    assert listing.returncode == 0 and "bench" in listing.stdout and "ui" in listing.stdout
    unknown = sioharness(venv, project, "benhc")
    assert unknown.returncode == 2 and "unknown command 'benhc' (did you mean 'bench'?)" in unknown.stderr
    # A hint names the console script: `python -m reports` there would run the project's own reports package.
    (project / "results" / "empty").mkdir(parents=True)
    check = sioharness(venv, project, "check", "results/empty")
    assert check.returncode == 2 and f"(sioharness report {Path('results/empty')})" in check.stderr, check.stderr


def test_a_users_app_and_locustfile_run_and_report_from_the_installed_harness(venv: Path, project: Path) -> None:
    done = sioharness(venv, project, "bench", "--app", "app.py:socketio", "--locustfile", "locustfile.py",
                      "--modes", "gevent", "--users", "2", "--duration", "2", "--warmup", "0", "--run-id", "mine")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = project / "results" / "mine"  # an installed harness writes under the folder it runs from
    cell = run / "gevent-app--project"  # named after the user class, ProjectUser
    assert json.loads((cell / "run.json").read_text())["status"] == "ok"
    samples = samples_of(cell).to_pandas()
    acks = samples[samples.name == "my_event"]
    # The greeting matched: the app and the locustfile imported the project's own core, not the harness's.
    assert len(acks) > 20 and acks.ok.all()
    assert (cell / "report.md").is_file() and (cell / "report.html").is_file()
    for built in ("report.md", "report.html", "summary.json"):
        (cell / built).unlink()
    again = sioharness(venv, project, "report", str(cell), "-q", "--no-html")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((cell / "summary.json").read_text())["latency"]["my_event"]["ok"] > 20
    assert (cell / "report.md").is_file()


def test_the_reference_target_and_a_shipped_profile_run_from_the_installed_harness(venv: Path, project: Path) -> None:
    done = sioharness(venv, project, "bench", "--profile", "quick", "--targets", "gevent-dev", "--scenarios", "echo",
                      "--duration", "2", "--warmup", "0", "--users", "4", "--run-id", "ref", "--no-report")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((project / "results" / "ref" / "gevent-dev--echo" / "run.json").read_text())
    assert record["status"] == "ok"
    assert str(venv) in " ".join(record["command"])  # Locust ran the wheel's harness locustfile


def test_the_web_ui_serves_a_users_locustfile_from_the_installed_harness(venv: Path, project: Path) -> None:
    port = free_port()
    argv = [str(venv / "bin" / "sioharness"), "ui", "--locustfile", "locustfile.py", "--app", "app.py:socketio",
            "--mode", "gevent", "--web-port", str(port)]
    with running_ui(argv, port=port, cwd=project, env=user_env(venv), log=project / "ui.out") as page:
        assert "ProjectUser" in page
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/socketio/", timeout=5) as response:
            assert response.status == 200 and "Socket.IO" in response.read().decode()
    assert (project / "results").is_dir()
