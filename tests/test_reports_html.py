"""report.html is one self-contained file whose plots decode and render in headless Chromium."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from reports import build_cell_report
from reports.sections import CELL_SECTIONS
from tests.reports_fixtures.html_checks import REPORT_PLOTS, assert_complete_cell_report, report_tags
from tests.reports_fixtures.known_cell import write_known_cell

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Nothing resolves: the page must render from its own bytes.
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("html")
    cell = write_known_cell(base / "gevent-dev--echo")
    build_cell_report(cell, out_dir=base / "out")
    return base / "out" / "report.html"


def test_report_is_self_contained_with_non_blank_plots(report_html: Path) -> None:
    text = report_html.read_text(encoding="utf-8")
    tags = report_tags(report_html)
    names = [tag for tag, _ in tags]
    assert "script" not in names and "link" not in names and "iframe" not in names
    assert "url(" not in text
    hrefs = [a.get("href") for tag, a in tags if tag == "a"]
    assert hrefs and all(h and h.startswith("#") for h in hrefs)
    assert_complete_cell_report(report_html)


# Injected into a copy of the report (the report itself has no script): records load
# errors, then each image's decoded size, and every section id, into <pre id="probe">.
_PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(String(e.message || (e.target && e.target.tagName) || e.type));
}, true);
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (i) {
    return {alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight};
  });
  var sections = Array.prototype.map.call(document.querySelectorAll("section"), function (s) { return s.id; });
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({images: images, sections: sections, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""
# A control image with broken PNG bytes: proves the probe tells a broken image from a good one.
_BROKEN = '<img alt="control-broken" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgBROKEN">'


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _dump_dom(chromium: str, page: Path) -> str:
    """Run headless Chromium on ``page`` with a fresh profile; always stop its whole process group."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 0, err[-2000:]
    return out


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(report_html: Path, tmp_path: Path) -> None:
    html = report_html.read_text(encoding="utf-8")
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(html.replace("<head>", "<head>" + _PROBE, 1).replace("</body>", _BROKEN + "</body>", 1),
                          encoding="utf-8")
    dom = _dump_dom(_chromium(), probe_page)
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert match, "the page never finished loading: " + dom[:500]
    probe = json.loads(match.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))

    *plots, control = probe["images"]
    assert control["alt"] == "control-broken" and control["width"] == 0
    assert probe["errors"] == ["IMG"]  # the control's decode error, and nothing else
    assert len(plots) == REPORT_PLOTS
    for img in plots:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, img
    assert probe["sections"] == [key for key, _ in CELL_SECTIONS]


def test_run_where_every_request_failed_still_gets_every_section(tmp_path: Path) -> None:
    """A dead target: only failed connects. Every section renders, plots say "no data"."""
    from reports.synthetic import BASE_NS, NS_PER_S, samples_frame, write_run_json, write_shard

    cell = tmp_path / "gevent-dev--echo"
    t = BASE_NS + np.arange(50) * (NS_PER_S // 10)
    write_shard(cell, samples_frame(t, "connect", "connect", 5e6, ok=False,
                                    error="ConnectionRefusedError: [Errno 111] Connection refused"))
    write_run_json(cell, started_ns=BASE_NS, ended_ns=BASE_NS + 5 * NS_PER_S, status="failed",
                   reason="target exited with code 1 during the run")
    report = build_cell_report(cell, out_dir=tmp_path / "out")
    summary = report.summary
    assert summary["status"] == "failed"
    assert summary["primary"] is None
    assert summary["connections"]["connect_failure_ratio"] == 1.0
    assert summary["latency"]["connect"]["p99_us"] is None  # failures are counted, never timed
    tags = report_tags(tmp_path / "out" / "report.html")
    assert {a.get("id") for tag, a in tags if tag == "section"} == {key for key, _ in CELL_SECTIONS}
    assert sum(tag == "img" for tag, _ in tags) == REPORT_PLOTS
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "target exited with code 1 during the run" in md
