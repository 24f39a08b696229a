"""The built book, read in a real browser: nothing wider than its column.

The HTML is built from the committed executed chapters (jupyter-book never executes them; about
15 s), then every page is loaded in headless Chromium at a laptop's width with a probe script
(``tests/browser/overflow.js``) that lists outputs, tables, paragraphs, figures and formulas
that are cut off or need sideways scrolling. The test fails on any, naming page and element.
"""

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
PROBE = (ROOT / "tests" / "browser" / "overflow.js").read_text()
WIDTH = 1280

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    proc = subprocess.run(["jupyter-book", "build", str(ROOT), "--path-output", str(out)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "_build" / "html"


def overflows(page: Path) -> list[dict]:
    """The probe's report for one page (loaded from a copy with the probe injected)."""
    probe = page.with_name(f"_probe_{page.name}")
    probe.write_text(page.read_text().replace("</body>", f"<script>{PROBE}</script></body>"))
    try:
        for _ in range(3):  # a slow machine may dump the page before the probe ran; try again
            dom = subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                                  "--disable-dev-shm-usage", f"--window-size={WIDTH},2000",
                                  "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                                 capture_output=True, text=True, timeout=180).stdout
            found = re.search(r'<pre id="overflow-report">(.*?)</pre>', dom, re.S)
            if found:
                return json.loads(html.unescape(found.group(1)))
    finally:
        probe.unlink()
    raise AssertionError(f"the probe never reported on {page}")


def pages(built: Path) -> list[Path]:
    return sorted((built / "book").rglob("*.html"))


def test_every_page_of_the_book_is_checked(built):
    names = {p.stem for p in pages(built)}
    assert {"intro", "methodology", "rerun", "status", "05_text_classification", "07_ablations"} <= names


def test_nothing_in_the_built_book_is_wider_than_its_column(built):
    problems = {str(p.relative_to(built)): overflows(p) for p in pages(built)}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, json.dumps(problems, indent=1, ensure_ascii=False)[:6000]


def test_the_probe_sees_an_overflow_when_there_is_one(built, tmp_path):
    """The check can fail: a page with a 3000-px-wide output must be reported."""
    page = built / "book" / "methodology.html"
    wide = page.with_name("_wide_methodology.html")
    block = '<div class="cell_output"><pre style="white-space: pre">' + "x" * 3000 + "</pre></div>"
    wide.write_text(page.read_text().replace("</article>", block + "</article>", 1))
    try:
        found = overflows(wide)
    finally:
        wide.unlink()
    assert any(f["tag"] == "pre" and f["scrolled"] > 1000 for f in found), found
