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
from browser_check import (MAX_PAGE_HEIGHT, check_auc_axes, check_book, check_chapter_table,  # noqa: E402
                           check_links, check_offline, find_chromium, internal_names_in, probe_page, serve)

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
                    "05-task-count-figure3", "06-inside-akf", "07-results", "08-why-the-numbers-differ",
                    "09-when-fusion-helps"))]
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
    assert box.count('class="pasted-text"') == 3, "the findings box should hold three glued findings"
    text = re.sub(r"<[^>]+>", " ", box)
    assert re.search(r"EMM (does not beat its own trained models|beats its comparator in \d+ of \d+)", text), text
    synthetic = (r"EMM beat the best multi-task baseline at \d+ of \d+ settings"  # the first pass only
                 r"|over \d+ complete settings tested as one family, EMM was worse"  # the map, once a point is complete
                 r"|Not answered yet: \d+ of \d+ settings")
    assert "paper" in text and re.search(synthetic, text), text
    glued = " ".join(re.findall(r'class="pasted-text">(.*?)</span>', box, flags=re.S))
    assert len(glued.split()) <= 140, f"the three findings should read in 30 seconds: {len(glued.split())} words"
    assert "headline-forest.png" in page and 'caption-number' in page


def test_chapters_end_with_a_computed_conclusion(site: Path) -> None:
    """Every study chapter but the results chapter itself ends with a conclusion that its code computes
    (a cell output, not typed words) and that points to chapter 07, where every experiment meets."""
    for name in ("01-data", "02-single-task", "03-fusion-table1", "04-ablation-table2", "05-task-count-figure3",
                 "08-why-the-numbers-differ"):
        page = (site / "book" / "notebooks" / f"{name}.html").read_text(encoding="utf-8")
        assert '<section id="conclusion">' in page, f"{name}: no Conclusion section"
        section = page[page.index('<section id="conclusion">'):]
        assert 'href="07-results.html' in section, f"{name}: the conclusion does not point to chapter 07"
        outputs = re.findall(r'class="cell_output.*?</div>\s*</div>', section, flags=re.S)
        words = re.sub(r"<[^>]+>", " ", " ".join(outputs)).split()
        assert len(words) >= 12, f"{name}: the conclusion computes no sentence ({' '.join(words)!r})"


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
        '<figure id="fig-c"><img src="dot.png"><figcaption><span class="caption-number">Fig. 2 </span>'
        '</figcaption></figure>'
        '<div class="cell_output"><img src="dot.png"></div></article></body></html>')
    with serve(tmp_path) as base:
        rep = probe_page(chromium, base, "page.html")
    joined = "\n".join(rep.problems)
    assert "NaN" in joined and "e-0" in joined, rep.problems
    assert "fig-b has no number" in joined and "fig-a" not in joined, rep.problems
    assert joined.count("not in a numbered figure") == 1, rep.problems
    assert "fig-c has no caption" in joined and "fig-b has no caption" not in joined, rep.problems
    assert rep.data["height"] > 0


def _chromium_or_skip() -> str:
    chromium = find_chromium()
    if not chromium:
        if _require():
            pytest.fail("headless Chromium not found (apt-get install chromium, or set EMM_CHROMIUM)")
        pytest.skip("headless Chromium not found")
    return chromium


def test_browser_probe_finds_wide_tables_internal_names_and_tall_pages(tmp_path: Path) -> None:
    chromium = _chromium_or_skip()
    cells = "".join(f"<td>column number {i} with a long value</td>" for i in range(30))
    (tmp_path / "page.html").write_text(
        '<html><head><title>t</title></head><body style="margin:0">'
        '<article class="bd-article" style="width:800px">'
        f'<div style="overflow-x:auto"><table id="tab-wide"><tr>{cells}</tr></table></div>'
        '<table id="tab-narrow"><tr><td>fits</td></tr></table>'
        f'<details><summary>every point</summary><table id="tab-folded"><tr>{cells}</tr></table></details>'
        '<p>The coverage shows points_run of 6 and emm:soft beat tm1:t1; <code>positive_rate</code> is code.</p>'
        f'<div style="height:{MAX_PAGE_HEIGHT + 2000}px">tall</div></article></body></html>')
    with serve(tmp_path) as base:
        rep = probe_page(chromium, base, "page.html")
    joined = "\n".join(rep.problems)
    assert "table tab-wide is" in joined and "tab-narrow" not in joined, rep.problems
    assert "table tab-folded is" in joined and "(in a dropdown)" in joined, rep.problems  # opened to measure
    for name in ("points_run", "emm:soft", "tm1:t1"):
        assert f"internal name {name!r}" in joined, rep.problems
    assert "positive_rate" not in joined, rep.problems  # code is allowed to show internal names
    assert "px tall" in joined, rep.problems


def test_internal_names_come_from_the_glossary() -> None:
    assert internal_names_in("Seeds planned: 3; the model EMM (soft gate, ours)") == []
    assert internal_names_in("seeds_planned 3, synthetic/corr=0.5/rows=100000") == [
        "seeds_planned", "synthetic/corr=0.5/rows=100000"]


def test_auc_axis_check_reads_the_figures_own_record(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emm_lib.study.shared import plots

    fig, (a, b) = plt.subplots(1, 2)
    a.plot([1, 2], [0.9, 1.0])
    a.set(xlabel="epoch", ylabel="validation AUC", ylim=(0.9, 1.05))  # past the possible
    b.plot([1, 2], [-0.01, 0.02])
    b.set(ylabel="difference in test AUC")  # a difference may be negative
    plots.save(fig, tmp_path / "bad.png")
    a.set_ylim(0.9, 1.0)
    plots.save(fig, tmp_path / "good.png")
    plt.close(fig)
    problems = check_auc_axes(tmp_path, "page.html", [{"src": "bad.png"}, {"src": "good.png"}])
    assert len(problems) == 1 and "bad.png" in problems[0] and "1.050" in problems[0], problems


def test_chapter_table_check_finds_a_missing_chapter(tmp_path: Path) -> None:
    (tmp_path / "_toc.yml").write_text("root: book/intro\nparts:\n  - chapters:\n      - file: book/method\n"
                                       "      - file: book/notebooks/09-when\n")
    (tmp_path / "book").mkdir()
    page = tmp_path / "book" / "intro.html"
    page.write_text('<table><tr><td><a href="method.html">M</a></td></tr></table><a href="notebooks/09-when.html">x</a>')
    problems = check_chapter_table(tmp_path, tmp_path / "_toc.yml")
    assert problems == ["book/intro.html: the chapter table has no row for book/notebooks/09-when"], problems
    page.write_text('<table><tr><td><a href="method.html">M</a></td></tr>'
                    '<tr><td><a href="notebooks/09-when.html#top">N</a></td></tr></table>')
    assert check_chapter_table(tmp_path, tmp_path / "_toc.yml") == []
