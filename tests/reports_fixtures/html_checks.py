"""Checks that a report.html is complete: every section, every plot a real picture."""
from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from reports.sections import CELL_SECTIONS

PNG_PREFIX = "data:image/png;base64,"
REPORT_PLOTS = 6  # percentile curves, latency over time, GC timeline, connections, throughput, server


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def report_tags(path: Path) -> list[tuple[str, dict[str, str | None]]]:
    parser = TagCollector()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.tags


def assert_complete_cell_report(path: Path) -> None:
    """Every cell section is present and every plot decodes to a non-blank PNG."""
    tags = report_tags(path)
    ids = {a.get("id") for tag, a in tags if tag == "section"}
    assert ids == {key for key, _ in CELL_SECTIONS}
    images = [a for tag, a in tags if tag == "img"]
    assert len(images) == REPORT_PLOTS
    for img in images:
        src = img["src"] or ""
        assert src.startswith(PNG_PREFIX), src[:40]
        picture = Image.open(io.BytesIO(base64.b64decode(src[len(PNG_PREFIX):])))
        assert picture.size == (int(img["width"]), int(img["height"]))
        colors = picture.convert("RGB").getcolors(maxcolors=1 << 16)
        # A plot has axes, text and lines: far more than a blank canvas's one or two colors.
        assert colors is None or len(colors) > 20, img["alt"]
