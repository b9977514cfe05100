"""HTML → markdown extractors compared on the real Sphinx/MkDocs pages of tests/fixtures/html/.

For each page and candidate: `<pre>` blocks kept byte-identical (as the full body of a fenced block),
headings kept as markdown headings, navigation strings leaked, tables kept, and time. The referee is
lxml (not a candidate): main content by XPath, `<pre>` text with entities decoded, navigation strings
= texts inside nav/sidebar/footer/header regions that the main content does not contain.

    python bench/html_extract.py   # one line per page and candidate, then totals

Needs trafilatura and markdownify besides the project (`pip install trafilatura==2.3.1 markdownify==1.2.3`).

The product route (`agent.extract`) is the baseline the others are compared against (time ratio).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import lxml.html

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deadzone_build.sources.agent.extract import extract_markdown  # noqa: E402

PAGES = sorted((REPO / "tests" / "fixtures" / "html").glob("*/*.html"))
MAIN_XPATH = ("//*[@itemprop='articleBody']", "//article[contains(@class,'md-content__inner')]",
              "//div[contains(concat(' ',@class,' '),' body ') and @role='main']", "//main", "//article")
NAV_XPATH = ("//nav", "//footer", "//header", "//*[@role='navigation']", "//*[@role='contentinfo']",
             "//div[contains(@class,'sphinxsidebar')]", "//div[contains(@class,'related')]",
             "//div[contains(@class,'footer')]", "//div[contains(@class,'md-sidebar')]")
FENCE = re.compile(r"^(?P<f>`{3,}|~{3,})[^\n]*\n(?P<body>.*?)\n(?P=f)[ \t]*$", re.M | re.S)


def referee(html: str) -> tuple[list[str], list[str], set[str], int]:
    doc = lxml.html.fromstring(html)
    main = next(doc.xpath(x)[0] for x in MAIN_XPATH if doc.xpath(x))
    for permalink in main.xpath(".//a[contains(@class,'headerlink')]"):  # "¶" / icon-font anchors
        permalink.drop_tree()
    pres = [pre.text_content().rstrip("\n") for pre in main.iter("pre")]
    heads = [" ".join(h.text_content().split()) for h in main.iter("h1", "h2", "h3", "h4", "h5", "h6")]
    main_text = " ".join(main.text_content().split())
    nav: set[str] = set()
    for xpath in NAV_XPATH:
        for region in doc.xpath(xpath):
            for text in region.itertext():
                text = " ".join(text.split())
                if len(text) >= 6 and text not in main_text:
                    nav.add(text)
    tables = [t for t in main.iter("table") if "highlighttable" not in (t.get("class") or "")]
    return pres, heads, nav, len(tables)


def score(markdown: str, pres: list[str], heads: list[str], nav: set[str]) -> dict[str, int]:
    bodies = {m["body"] for m in FENCE.finditer(markdown)}
    heading_lines = {" ".join(re.sub(r"[*`]", "", line.lstrip("#")).split()) for line in markdown.splitlines() if line.startswith("#")}
    flat = " ".join(markdown.split())
    return {"pre": sum(1 for p in pres if p in bodies), "headings": sum(1 for h in heads if h in heading_lines),
            "nav_leaked": sum(1 for n in nav if n in flat),
            "table_rows": len(re.findall(r"^\|?\s*:?-{3,}", markdown, re.M))}


def candidates() -> dict[str, object]:
    import html_to_markdown
    import markdownify
    import trafilatura
    from html_to_markdown import ConversionOptions, PreprocessingOptions
    from selectolax.lexbor import LexborHTMLParser

    def selected(html: str) -> str:  # the same main-content selection as the product, without its code rules
        tree = LexborHTMLParser(html)
        node = next((tree.css_first(s) for s in ("[itemprop=articleBody]", "article.md-content__inner",
                                                  "div.body[role=main]", "main", "article") if tree.css_first(s)),
                    tree.body)
        for sel in ("script", "style", "a.headerlink", "nav", "footer", "form"):
            for n in node.css(sel):
                n.decompose()
        return node.html or ""

    return {
        "agent.extract (product)": lambda h: extract_markdown(h, "").markdown,
        "trafilatura": lambda h: trafilatura.extract(h, output_format="markdown", include_formatting=True,
                                                     include_tables=True, include_links=False, favor_recall=True) or "",
        "html-to-markdown whole page": lambda h: html_to_markdown.convert(h, ConversionOptions(
            extract_metadata=False, preprocessing=PreprocessingOptions(preset="aggressive"))).content,
        "selection + markdownify": lambda h: markdownify.markdownify(selected(h), heading_style="ATX"),
        "selection + html-to-markdown": lambda h: html_to_markdown.convert(
            selected(h), ConversionOptions(extract_metadata=False)).content,
    }


def main() -> None:
    import warnings
    warnings.filterwarnings("ignore")
    cands = candidates()
    totals = {name: {"pre": 0, "headings": 0, "nav_leaked": 0, "seconds": 0.0} for name in cands}
    want = {"pre": 0, "headings": 0, "nav": 0}
    for page in PAGES:
        html = page.read_text(encoding="utf-8")
        pres, heads, nav, tables = referee(html)
        want["pre"] += len(pres); want["headings"] += len(heads); want["nav"] += len(nav)
        print(f"{page.parent.name}/{page.name}: {len(html)} bytes, {len(pres)} <pre>, {len(heads)} headings, "
              f"{len(nav)} nav strings, {tables} tables")
        for name, convert in cands.items():
            started = time.perf_counter()
            markdown = convert(html)
            seconds = time.perf_counter() - started
            s = score(markdown, pres, heads, nav)
            for k in ("pre", "headings", "nav_leaked"):
                totals[name][k] += s[k]
            totals[name]["seconds"] += seconds
            print(f"  {name:30s} pre {s['pre']:3d}/{len(pres):<3d} headings {s['headings']:3d}/{len(heads):<3d} "
                  f"nav leaked {s['nav_leaked']:2d}/{len(nav):<3d} table rows {s['table_rows']:2d} {seconds * 1000:7.1f} ms")
    base = totals["agent.extract (product)"]["seconds"]
    print(f"\ntotals over {len(PAGES)} pages ({want['pre']} <pre>, {want['headings']} headings, {want['nav']} nav strings):")
    for name, t in totals.items():
        print(f"  {name:30s} pre {t['pre']:3d}  headings {t['headings']:3d}  nav leaked {t['nav_leaked']:3d}  "
              f"{t['seconds'] * 1000:7.1f} ms (time ratio vs product {t['seconds'] / base:5.2f})")


if __name__ == "__main__":
    main()
