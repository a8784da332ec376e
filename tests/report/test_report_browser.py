"""The report in a real browser: headless Chromium loads it without console messages, decodes
every picture, and draws them (the screenshot is not blank where the pictures are)."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import pytest

INSTALL = "apt-get update && apt-get install -y chromium"
WIDTH = 1200
# added to a copy of the report only (the report itself has no scripts): once the page has
# loaded, write where each picture is drawn, and whether it decoded, into the DOM
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map((img) => {
    const box = img.getBoundingClientRect();
    return {complete: img.complete, natural: img.naturalWidth, left: box.left + scrollX,
            top: box.top + scrollY, width: box.width, height: box.height};
  });
  document.body.setAttribute("data-probe", JSON.stringify(
    {height: document.documentElement.scrollHeight, images: images}));
});
</script>"""


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(f"chromium is not installed; install it with: {INSTALL}")
    return found


def _run(chromium: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += ["--enable-logging=stderr", "--v=0", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


class _Probe(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and dict(attrs).get("data-probe"):
            self.found = json.loads(str(dict(attrs)["data-probe"]))


def _console(stderr: str) -> list[str]:
    """The page's console messages and uncaught errors in Chromium's log."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.mark.service
def test_report_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    probed = tmp_path / "probed.html"
    probed.write_text(
        report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    dom = _run(chromium, f"--window-size={WIDTH},1000", "--dump-dom", probed.as_uri())
    parser = _Probe()
    parser.feed(dom.stdout)
    assert parser.found is not None, "the page did not finish loading"
    images = parser.found["images"]
    assert len(images) == 4
    assert all(i["complete"] and i["natural"] > 0 for i in images), images  # all decoded

    height = int(parser.found["height"])
    shot = tmp_path / "report.png"
    done = _run(
        chromium, f"--window-size={WIDTH},{height}", f"--screenshot={shot}", report.as_uri()
    )
    assert _console(done.stderr) == []
    screen = mpimg.imread(shot)[..., :3]
    assert screen.shape[:2] == (height, WIDTH)
    assert screen.std() > 0.05
    for image in images:
        top, left = round(image["top"]), round(image["left"])
        assert image["width"] > 600
        assert image["height"] > 200
        assert top + image["height"] <= height
        region = screen[top : top + int(image["height"]), left : left + int(image["width"])]
        assert region.std() > 0.1, image  # the picture is drawn there
        assert (region.min(axis=2) < 0.9).mean() > 0.1, image
