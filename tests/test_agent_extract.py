"""Deterministic HTML → markdown on real Sphinx and MkDocs pages (tests/fixtures/html/).

The referee is lxml, not the product's parser: main content by XPath, `<pre>` text with entities
decoded, navigation strings = texts of the page's nav/sidebar/footer regions that the main content
does not contain.
"""

from __future__ import annotations

from pathlib import Path

import lxml.html
import pytest

from deadzone_build.errors import ScrapeError
from deadzone_build.sources.agent import extract, route
from deadzone_build.sources.agent.extract import extract_markdown
from deadzone_build.sources.agent.verify import code_blocks
from fx_htmlsite import HTML_DIR

PAGES = sorted(HTML_DIR.glob("*/*.html"))
MAIN_XPATH = ("//*[@itemprop='articleBody']", "//article[contains(@class,'md-content__inner')]",
              "//div[contains(concat(' ',@class,' '),' body ') and @role='main']")
NAV_XPATH = ("//nav", "//footer", "//header", "//*[@role='navigation']", "//*[@role='contentinfo']",
             "//div[contains(@class,'sphinxsidebar')]", "//div[contains(@class,'related')]",
             "//div[contains(@class,'footer')]", "//div[contains(@class,'md-sidebar')]")


def referee(html: str):
    doc = lxml.html.fromstring(html)
    main = next(doc.xpath(x)[0] for x in MAIN_XPATH if doc.xpath(x))
    for permalink in main.xpath(".//a[contains(@class,'headerlink')]"):
        permalink.drop_tree()
    pres = [pre.text_content().rstrip("\n") for pre in main.iter("pre")]
    headings = [" ".join(h.text_content().split()) for h in main.iter("h1", "h2", "h3", "h4", "h5", "h6")]
    main_text = " ".join(main.text_content().split())
    nav = {" ".join(t.split()) for x in NAV_XPATH for region in doc.xpath(x) for t in region.itertext()}
    nav = {t for t in nav if len(t) >= 6 and t not in main_text}
    tables = [t for t in main.iter("table") if not t.xpath(".//pre|.//ul|.//ol")]
    return pres, headings, nav, len(tables)


@pytest.fixture(scope="module", params=PAGES, ids=lambda p: f"{p.parent.name}/{p.name}")
def page(request):
    html = request.param.read_text(encoding="utf-8")
    return html, extract_markdown(html, request.param.as_uri())


def test_every_pre_block_is_kept_byte_identical_as_its_own_fence(page) -> None:
    html, extraction = page
    pres, _, _, _ = referee(html)
    assert len(pres) >= 5
    fenced = [block.content for block in code_blocks(extraction.markdown)]
    # every <pre>, in page order, is exactly the body of one fenced block (markdown-it finds it)
    assert fenced == pres
    assert list(extraction.code_blocks) == pres


def test_navigation_sidebar_and_footer_text_is_dropped(page) -> None:
    html, extraction = page
    _, _, nav, _ = referee(html)
    flat = " ".join(extraction.markdown.split())
    assert len(nav) >= 5
    leaked = sorted(n for n in nav if n in flat)
    assert leaked == []
    for chrome in ("Quick search", "Created using", "© Copyright", "Permalink to this", "Edit on GitHub",
                   "Navigation", "Table of contents", "¶"):
        assert chrome not in extraction.markdown


def test_headings_and_tables_are_kept(page) -> None:
    html, extraction = page
    _, headings, _, tables = referee(html)
    lines = {" ".join(line.lstrip("#").replace("*", "").replace("`", "").split())
             for line in extraction.markdown.splitlines() if line.startswith("#")}
    assert headings and [h for h in headings if h not in lines] == []
    assert extraction.markdown.count("\n| ---") + extraction.markdown.count("\n|---") >= tables


def test_jinja_templates_tables_and_lists_survive() -> None:
    markdown = extract_markdown((HTML_DIR / "jinja2" / "templates.html").read_text("utf-8"), "").markdown
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(rows) >= 10  # three real tables (operators, tests…)
    assert any(line.startswith(("- ", "* ")) for line in markdown.splitlines())
    assert "## Template Inheritance" in markdown


def test_extraction_is_deterministic_and_keeps_external_links_only() -> None:
    html = (HTML_DIR / "click" / "quickstart.html").read_text("utf-8")
    first, second = extract_markdown(html, "u").markdown, extract_markdown(html, "u").markdown
    assert first == second
    assert "](#" not in first and ".html)" not in first  # in-site links keep their text only
    assert "[installing pip](https://pip.readthedocs.io/en/latest/installing/)" in first


def test_code_with_backtick_fences_entities_and_odd_placement() -> None:
    html = """<!doctype html><html><body><nav><a href="/">Home page link</a></nav>
    <main><h1>Title &amp; more</h1>
    <div class="highlight-markdown"><pre>```python
x = 1 &lt; 2 &amp;&amp; "&quot;"
```
	tab	kept   spaces</pre></div>
    <ul><li>item one<pre>in a list</pre></li><li>item two</li></ul>
    <table><tr><td><pre>in a layout table</pre></td><td>beside</td></tr></table>
    <blockquote><pre>quoted</pre></blockquote>
    <p hidden>secret<code>x</code></p><div hidden><pre>hidden code</pre></div>
    <p>DZCODEBLOCK0N0E is literal page text</p>
    </main><footer>Footer text here</footer></body></html>"""
    extraction = extract_markdown(html, "u")
    code = ['```python\nx = 1 < 2 && "\\""\n```\n\ttab\tkept   spaces'.replace('\\"', '"'),
            "in a list", "in a layout table", "quoted", "hidden code"]
    assert list(extraction.code_blocks) == code
    assert [b.content for b in code_blocks(extraction.markdown)] == code
    assert "````markdown\n```python" in extraction.markdown  # a fence longer than the code's own
    assert "# Title & more" in extraction.markdown
    assert "DZCODEBLOCK0N0E is literal page text" in extraction.markdown  # placeholders never collide
    assert "Home page link" not in extraction.markdown and "Footer text" not in extraction.markdown


def test_a_page_without_main_markers_falls_back_to_body_without_chrome() -> None:
    html = ("<html><body><header><nav>Site menu entries</nav></header><h2>Install</h2><p>Run it.</p>"
            "<pre>pip install thing</pre><footer>Legal footer</footer><script>alert(1)</script></body></html>")
    markdown = extract_markdown(html, "u").markdown
    assert markdown == "## Install\n\nRun it.\n\n```\npip install thing\n```\n"


def test_empty_and_garbage_input_give_empty_or_plain_markdown() -> None:
    assert extract_markdown("", "u").markdown == ""
    assert extract_markdown("just text, no tags", "u").markdown == "just text, no tags\n"


def test_other_library_versions_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    extract.check_versions()  # the installed versions are the pinned ones
    monkeypatch.setitem(route.EXTRACTOR_PINS, "html-to-markdown", "0.0.1")
    with pytest.raises(ScrapeError, match=r"html-to-markdown==0.0.1.*finds 3\.21\.2"):
        extract.check_versions()


def test_pyproject_pins_what_the_key_names() -> None:
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text("utf-8")
    for name, version in route.EXTRACTOR_PINS.items():
        assert f'"{name}=={version}"' in text


def test_sphinx_api_signatures_become_one_code_span() -> None:
    html = ('<div class="body" role="main"><h2>API</h2><dl class="py function">'
            '<dt class="sig sig-object py" id="click.command"><span class="sig-prename">click.</span>'
            '<span class="sig-name">command</span>(<em class="sig-param">name: Optional[str] = None</em>, '
            '<em class="sig-param">**attrs: Any</em>)<a class="reference internal" href="_modules/x.html">'
            '<span class="viewcode-link">[source]</span></a><a class="headerlink" href="#click.command">¶</a></dt>'
            '<dd><p>Creates a new command.</p></dd></dl></div>')
    assert extract_markdown(html, "u").markdown == (
        "## API\n\n`click.command(name: Optional[str] = None, **attrs: Any)`\n\nCreates a new command.\n")
