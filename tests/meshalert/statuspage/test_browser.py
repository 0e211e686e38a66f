"""The status page in a real browser: Debian's chromium, headless, against the page served
from real SQLite data. Checks what a person sees and keeps a screenshot.

``make test`` installs chromium (``make deps-browser``) and sets
``MESHALERT_REQUIRE_BROWSER=1`` so this test can never silently turn into a skip.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from meshalert.statuspage.server import StatusPage
from tests.meshalert.statuspage.conftest import HOSTILE_SERVICE

REPO_ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO_ROOT / "test-artifacts"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = "chromium is not installed (make deps-browser installs Debian's package)"
        if os.environ.get("MESHALERT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"MESHALERT_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return path


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    done = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, f"chromium {args} -> {done.returncode}\n{done.stderr[-3000:]}"
    return done


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Text nodes joined with spaces, as separate boxes (a dt and its dd) read."""
        return " ".join(" ".join(self.texts).split())

    def find(self, tag: str, **attrs: str) -> list[Node]:
        found = (
            [self]
            if self.tag == tag and all(self.attrs.get(k) == v for k, v in attrs.items())
            else []
        )
        return found + [n for child in self.children for n in child.find(tag, **attrs)]


class Dom(HTMLParser):
    """The rendered DOM as nested nodes with their text, enough to ask what is shown."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.root = Node("#root", {})
        self._stack = [self.root]
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self._stack[-1].children.append(node)
        if tag not in VOID:  # (SVG elements are closed explicitly in the DOM dump)
            self._stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._stack) - 1, 0, -1):
            if self._stack[i].tag == tag:
                del self._stack[i:]
                return

    def handle_data(self, data: str) -> None:
        for node in self._stack:
            node.texts.append(data)


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_a_person_sees_the_firing_alert_its_evidence_and_a_chart_per_signal(
    page: StatusPage, tmp_path: Path
) -> None:
    dom = Dom(run_chromium(tmp_path, "--dump-dom", page.url).stdout).root
    assert dom.find("title")[0].text == "meshalert status (1 firing)"  # the page's own
    (firing,) = dom.find("article", **{"class": "alert firing"})
    assert "firing latency · checkout" in firing.text
    for shown in ("since", "observed", " ms", "latency.above_ms 500 ms", "env:MESHALERT_RULES"):
        assert shown in firing.text, shown
    assert "window 2m" in firing.text and "percentile=99" in firing.text  # the evidence
    # the hostile service name is shown as text; the browser made no element of it
    (pending,) = dom.find("article", **{"class": "alert pending"})
    assert HOSTILE_SERVICE in pending.text
    assert not dom.find("img") and not dom.find("script")
    for service in ("checkout", "cart", "catalog"):
        (section,) = dom.find("section", **{"class": "service", "data-service": service})
        figures = section.find("figure")
        assert [f.attrs["data-class"] for f in figures] == [
            "latency",
            "failures",
            "endpoints",
            "retries",
        ], service
        for figure in figures:
            (svg,) = figure.find("svg")
            assert svg.find("polyline"), (service, figure.attrs)
            assert len(svg.find("text", **{"class": "ytick"})) >= 3
            assert svg.find("text", **{"class": "xtick"})
    (checkout,) = dom.find("section", **{"class": "service", "data-service": "checkout"})
    assert checkout.find("rect", **{"class": "firing"})
    assert "threshold 500 ms" in checkout.text
    assert dom.find("h2", id="history")
    assert "pending → firing" in dom.find("table")[-1].text

    shot = tmp_path / "status-page.png"
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1600", page.url)
    assert png_size(shot) == (1280, 1600)
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "status-page.png")
