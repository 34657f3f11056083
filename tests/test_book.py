"""The built book works offline: no broken links, figures load, maths render (headless Chromium).

Needs an already built site in _build/html (`make html` after the notebooks ran; `make test`
does both at the tiny profile). Skips only when the site is missing *and* EMM_REQUIRE_BOOK is
unset; CI sets EMM_REQUIRE_BOOK=1 so that a missing site or browser fails instead.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser_check import check_book, check_links, check_offline, find_chromium, probe_page, serve  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "_build" / "html"
SHOTS = REPO / "_build" / "screenshots"

pytestmark = pytest.mark.book


def _require() -> bool:
    return os.environ.get("EMM_REQUIRE_BOOK", "").strip() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def site() -> Path:
    if not (SITE / "index.html").exists():
        if _require():
            pytest.fail(f"EMM_REQUIRE_BOOK is set but {SITE}/index.html does not exist: run `make html`")
        pytest.skip(f"{SITE} not built (run `make html`, or set EMM_REQUIRE_BOOK=1 to make this an error)")
    return SITE


def test_every_chapter_is_built(site: Path) -> None:
    expected = ["book/intro", "book/method", "book/reproduce", "book/limitations", "book/references",
                *(f"book/notebooks/{n}" for n in (
                    "01-data", "02-single-task", "03-fusion-table1", "04-ablation-table2",
                    "05-task-count-figure3", "06-inside-akf", "07-results", "08-why-the-numbers-differ"))]
    missing = [p for p in expected if not (site / f"{p}.html").exists()]
    assert not missing, f"chapters missing from the built book: {missing}"


def test_no_broken_internal_links(site: Path) -> None:
    problems = check_links(site)
    assert not problems, "\n".join(problems)


def test_no_page_loads_from_the_network(site: Path) -> None:
    problems = check_offline(site)
    assert not problems, "\n".join(problems)


def test_mathjax_is_served_locally(site: Path) -> None:
    assert (site / "_static" / "mathjax" / "tex-chtml.js").exists(), \
        "local MathJax missing: run `bash scripts/fetch_mathjax.sh` before building"
    page = (site / "book" / "method.html").read_text(encoding="utf-8")
    assert "_static/mathjax/tex-chtml.js" in page, "the method page does not load the local MathJax"
    assert "cdn.jsdelivr.net" not in page and "mathjax@3" not in page, "the method page still loads a CDN MathJax"


def test_pages_in_headless_chromium(site: Path) -> None:
    if not find_chromium():
        msg = "headless Chromium not found (apt-get install chromium, or set EMM_CHROMIUM)"
        if _require():
            pytest.fail(msg)
        pytest.skip(msg)
    lines: list[str] = []
    problems = check_book(site, SHOTS, log=lines.append)
    assert not problems, "\n".join(problems + ["", "log:"] + lines)
    for name in ("index", "intro", "method", "method-file-url", "07-results", "06-inside-akf"):
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000, f"screenshot {name}.png is empty"


def test_landing_page_states_the_computed_findings(site: Path) -> None:
    """The "What we found" box is filled by glue from the results chapter, with the headline figure."""
    page = (site / "book" / "intro.html").read_text(encoding="utf-8")
    box = page[page.index("What we found"):]
    box = box[:box.index("</div>")]
    assert 'class="pasted-text"' in box, "the findings box has no glued text"
    assert re.search(r"Against the best multi-task baseline, .*: better in \d+ of \d+ task comparisons", box), box[:2000]
    assert "headline-forest.png" in page and 'caption-number' in page


# --- the checker itself must be able to fail (no built book needed) ---------------------------

def test_link_checker_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=sub/a.html" />')
    (tmp_path / "sub" / "a.html").write_text(
        '<h1 id="top">A</h1><a href="b.html">ok</a> <a href="missing.html">broken</a> '
        '<a href="/sub/b.html">absolute</a> <a href="b.html#nowhere">bad anchor</a> '
        '<a href="#top">self</a> <img src="../img.png"> <a href="https://example.org/x">external</a>')
    (tmp_path / "sub" / "b.html").write_text('<p id="here">B</p><a href="a.html#top">back</a>')
    problems = check_links(tmp_path)
    assert len(problems) == 4, problems
    (tmp_path / "sub" / "c.html").write_text(
        '<script src="https://cdn.example.org/x.js"></script><link rel="stylesheet" href="//cdn.example.org/y.css">'
        '<a href="https://example.org/">a link is fine</a>')
    assert len(check_offline(tmp_path)) == 2
    joined = "\n".join(problems)
    for needle in ("missing.html", "/sub/b.html", "#nowhere", "img.png"):
        assert needle in joined


def test_browser_probe_finds_broken_image_and_raw_tex(tmp_path: Path) -> None:
    chromium = find_chromium()
    if not chromium:
        if _require():
            pytest.fail("headless Chromium not found (apt-get install chromium, or set EMM_CHROMIUM)")
        pytest.skip("headless Chromium not found")
    (tmp_path / "page.html").write_text(
        '<html><head><title>t</title></head><body><p>Maths: <span class="math">\\(x^2\\)</span></p>'
        '<img src="missing.png"></body></html>')
    with serve(tmp_path) as base:
        rep = probe_page(chromium, base, "page.html")
    joined = "\n".join(rep.problems)
    assert "missing.png" in joined, rep.problems
    assert "MathJax did not run" in joined, rep.problems
    assert "raw TeX" in joined, rep.problems


def test_browser_probe_finds_nan_tables_and_unnumbered_figures(tmp_path: Path) -> None:
    chromium = find_chromium()
    if not chromium:
        if _require():
            pytest.fail("headless Chromium not found (apt-get install chromium, or set EMM_CHROMIUM)")
        pytest.skip("headless Chromium not found")
    import base64

    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    (tmp_path / "dot.png").write_bytes(png)
    (tmp_path / "page.html").write_text(
        '<html><head><title>t</title></head><body><article class="bd-article">'
        '<table><tr><th>Model</th><th>AUC</th></tr><tr><td>EMM</td><td>NaN</td></tr>'
        '<tr><td>PLE</td><td>1.3857e-03</td></tr><tr><td>ok</td><td>0.950</td></tr></table>'
        '<figure id="fig-a"><img src="dot.png"><figcaption><span class="caption-number">Fig. 1 </span>ok'
        '</figcaption></figure>'
        '<figure id="fig-b"><img src="dot.png"><figcaption>no number</figcaption></figure>'
        '<div class="cell_output"><img src="dot.png"></div></article></body></html>')
    with serve(tmp_path) as base:
        rep = probe_page(chromium, base, "page.html")
    joined = "\n".join(rep.problems)
    assert "NaN" in joined and "e-0" in joined, rep.problems
    assert "fig-b has no number" in joined and "fig-a" not in joined, rep.problems
    assert joined.count("not in a numbered figure") == 1, rep.problems
    assert rep.data["height"] > 0
