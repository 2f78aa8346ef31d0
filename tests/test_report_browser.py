"""The reproduction report in a real headless browser: every figure loads and every
section is there, read from the rendered page (issue 14, deliverable 4).

The page is drawn by the real report code from a stored reproduce document
(tests/data/reproduce_quick.json.gz: a real `superpos reproduce --quick`, trimmed by
tests/data/make_report_fixture.py), with its claims recomputed by the current code.
The e2e test in test_reproduce.py runs the same browser check on the report of a
tiny reproduction it runs itself. Skips, saying how to install it, without Chromium.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from browser_check import check_report, require_browser

from superpos_cli.experiments import reproduce as r
from superpos_cli.experiments.report import write_report

FIXTURE = Path(__file__).parent / "data" / "reproduce_quick.json.gz"


@pytest.fixture(scope="module")
def browser() -> str:
    return require_browser()  # first, so that a skip does not draw the report


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[dict, Path]:
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as handle:
        doc = json.load(handle)
    doc["claims"] = r.claims(doc["steps"])
    page = tmp_path_factory.mktemp("report") / "report.html"
    write_report(doc, page)
    return doc, page


def test_every_figure_loads_and_every_section_renders(browser, report, tmp_path):
    doc, page = report
    seen = check_report(browser, doc, page, tmp_path)
    # Every step draws its figures: a compare its curves and telemetry, a sweep its
    # two sweep plots and curves, the cost step one two-panel figure.
    per_kind = {"compare": 2, "ablate": 3, "profile": 1}
    assert len(seen["images"]) == sum(per_kind[step["kind"]] for step in doc["steps"])
    assert seen["page_height"] > 5000  # laid out, not an empty or collapsed page


def test_the_check_fails_on_a_broken_figure(browser, report, tmp_path):
    # The same check on a copy whose third figure is not a PNG: it must say so.
    doc, page = report
    text = page.read_text(encoding="utf-8")
    starts = [m.start() for m in re.finditer(r"data:image/png;base64,", text)]
    at = starts[2] + len("data:image/png;base64,")
    broken = tmp_path / "broken.html"
    broken.write_text(text[:at] + "bm90IGEgcG5n" + text[at:], encoding="utf-8")  # "not a png" in front
    with pytest.raises(AssertionError, match="figures that did not load"):
        check_report(browser, doc, broken, tmp_path / "scratch")
