"""Open an HTML file in a real headless Chromium and read back, from the rendered
page, what loaded: every <img> (complete, natural size) and every h1/h2 heading.

A copy of the page gets a small script that runs on the load event and writes
its findings into the DOM as JSON; ``chromium --headless --dump-dom`` prints the
DOM once the page (and its virtual-time budget) has settled, and the JSON is read
back from that dump. Nothing here is a browser-automation library: the check
needs only the Debian package ``chromium`` (.ci/run installs it).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

# Headings every report has besides one per step (experiments/report.py).
FIXED_SECTIONS = ["Claims and open questions", "Machine, versions, code"]
# Names the binary goes by (Debian: chromium; Ubuntu snaps: chromium-browser).
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

_PROBE = """
<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight};
  });
  var headings = Array.prototype.map.call(document.querySelectorAll("h1, h2"), function (h) {
    return {tag: h.tagName.toLowerCase(), text: h.textContent, height: h.getBoundingClientRect().height};
  });
  var out = document.createElement("pre");
  out.id = "superpos-browser-check";
  out.textContent = JSON.stringify({images: images, headings: headings,
                                    page_height: document.documentElement.scrollHeight});
  document.body.appendChild(out);
});
</script>
"""
_RESULT = re.compile(r'<pre id="superpos-browser-check">(.*?)</pre>', re.S)


def find_browser() -> str | None:
    """The Chromium binary: $SUPERPOS_CHROMIUM, else the first of BROWSERS on PATH."""
    chosen = os.environ.get("SUPERPOS_CHROMIUM")
    if chosen:
        return shutil.which(chosen) or (chosen if Path(chosen).is_file() else None)
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def require_browser() -> str:
    """The binary, or a skip that says what was tried and how to install one."""
    found = find_browser()
    if found is None:
        tried = (f"$SUPERPOS_CHROMIUM={os.environ['SUPERPOS_CHROMIUM']!r}" if os.environ.get("SUPERPOS_CHROMIUM")
                 else ", ".join(BROWSERS) + " on PATH")
        pytest.skip(f"no headless Chromium found (tried {tried}); install Debian's with "
                    "`apt-get install -y chromium`, as .ci/run does")
    return found


def rendered(browser: str, page: Path, scratch: Path) -> dict:
    """``{"images": [{alt, complete, width, height}], "headings": [{tag, text, height}],
    "page_height"}`` as the browser saw ``page`` once loaded."""
    scratch.mkdir(parents=True, exist_ok=True)
    probe = scratch / "probe.html"
    source = page.read_text(encoding="utf-8")
    probe.write_text(source.replace("</body>", _PROBE + "</body>", 1), encoding="utf-8")
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               f"--user-data-dir={scratch / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
               probe.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    found = _RESULT.search(done.stdout)
    assert found, f"the browser gave no page (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


class _Sources(HTMLParser):
    """Every image source and every URL-bearing attribute of a page."""

    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        self.urls += [v for k, v in attrs if k in ("src", "href", "srcset", "data") and v]


def _sources(page: Path) -> _Sources:
    parser = _Sources()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    return parser


def check_report(browser: str, doc: dict, page: Path, scratch: Path) -> dict:
    """The assertions both browser tests make: every <img> of the file is in the
    rendered page and loaded (complete, natural size > 0); every section heading
    (the title, claims, one per step, provenance) is rendered with a height."""
    source = _sources(page)
    assert source.images, "the report has no figures"
    assert all(src.startswith("data:image/png;base64,") for src in source.images)
    # Self-contained: nothing to fetch (in-page anchors only).
    assert all(url.startswith(("#", "data:")) for url in source.urls), [u[:60] for u in source.urls]
    seen = rendered(browser, page, scratch)
    images = seen["images"]
    assert len(images) == len(source.images)
    broken = [img["alt"] for img in images if not (img["complete"] and img["width"] > 0 and img["height"] > 0)]
    assert not broken, f"figures that did not load: {broken}"
    headings = {h["text"].strip(): h for h in seen["headings"]}
    expected = FIXED_SECTIONS + [step["title"] for step in doc["steps"]]
    missing = [title for title in expected if title not in headings or headings[title]["height"] <= 0]
    assert not missing, f"sections not rendered: {missing}"
    assert any(h["tag"] == "h1" and h["text"].startswith("Superpositional Gradient Descent") for h in seen["headings"])
    return seen
