"""`collect` of kind scrape-via-agent: real pages from a local site, a fake endpoint, no model."""

from __future__ import annotations

from pathlib import Path

import pytest

from deadzone_build.errors import ScrapeError
from deadzone_build.registry.keys import key_inputs, slot_key
from deadzone_build.registry.load import parse_registry
from deadzone_build.sources.agent import extract
from deadzone_build.sources.agent.answers import DIRECTORY
from deadzone_build.sources.agent.verify import code_blocks
from deadzone_build.sources.base import SourceContext, source_for
from deadzone_build.sources.fetch import FetchSettings, make_client
from fx_llm import MODEL, serve_llm

FAST = FetchSettings(connect_timeout=2.0, read_timeout=5.0, retries=1, backoff_base=0.0, max_retry_after=0.05)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"


def agent_slot(*urls: str):
    text = "libraries:\n  - lib_id: /pallets/docs\n    kind: scrape-via-agent\n    urls:\n" + \
        "".join(f"      - {url}\n" for url in urls)
    return parse_registry(text, Path("reg.yaml"))[0]


def collect(slot, cache_dir: Path):
    client = make_client(FAST, rewrite=[], token="")
    try:
        return source_for(slot)(slot, SourceContext(client, FAST, cache_dir=cache_dir))
    finally:
        client.close()


@pytest.fixture
def with_endpoint(fake_llm, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DEADZONE_AGENT_ENDPOINT", fake_llm.endpoint)
    monkeypatch.setenv("DEADZONE_AGENT_ENDPOINT_MODEL", MODEL)
    monkeypatch.setenv("DEADZONE_AGENT_TIMEOUT", "0.5")
    return fake_llm


def test_no_endpoint_gives_the_deterministic_markdown_and_says_so(html_site, tmp_path) -> None:
    slot = agent_slot(html_site.url("click/quickstart.html"), html_site.url("attrs/examples.html"))
    result = collect(slot, tmp_path)
    assert [d.url for d in result.documents] == list(slot.urls)
    assert [(r["status"], r["route"], r["content_type"]) for r in result.reports] == \
        [("ok", "deterministic", "text/html")] * 2
    assert [r["code_blocks"] for r in result.reports] == [19, 36]
    assert "sections" not in result.reports[0] and not (tmp_path / DIRECTORY).exists()


def test_content_types(html_site, tmp_path) -> None:
    pdf = html_site.serve("manual.pdf", PDF, "application/pdf")
    png = html_site.serve("logo.png", b"\x89PNG\r\n\x1a\n", "image/png")
    md = html_site.serve("guide.md", "---\ntitle: x\n---\n# Guide\n\nUse `it`.\n", "text/markdown")
    plain = html_site.serve("notes.txt", "# Notes\n\nplain text docs\n", "text/plain")
    untyped = html_site.serve("bare", (html_site.root / "jinja2" / "tricks.html").read_bytes(), None)
    xhtml = html_site.serve("page.xhtml", "<html><body><main><h1>X</h1><pre>a</pre></main></body></html>",
                            "application/xhtml+xml")
    mislabelled = html_site.serve("raw/tricks.html", (html_site.root / "jinja2" / "tricks.html").read_bytes(),
                                  "text/plain; charset=utf-8")
    slot = agent_slot(pdf, md, plain, untyped, xhtml, png, mislabelled, html_site.url("click/quickstart.html"))
    result = collect(slot, tmp_path)
    by_url = {r["url"]: r for r in result.reports}
    for url, media in ((pdf, "application/pdf"), (png, "image/png")):
        assert by_url[url]["status"] == "dropped" and f"content type {media} is not a documentation page" \
            in by_url[url]["reason"] and by_url[url]["sha256"]
    assert by_url[md]["route"] == by_url[plain]["route"] == "served-markdown"
    assert by_url[untyped]["route"] == by_url[xhtml]["route"] == by_url[mislabelled]["route"] == "deterministic"
    docs = {d.url: d.markdown for d in result.documents}
    assert docs[md] == "# Guide\n\nUse `it`.\n"  # cleaned like github-md (front matter gone)
    assert "## Null-Default Fallback" in docs[untyped] and docs[xhtml] == "# X\n\n```\na\n```\n"
    assert docs[mislabelled] == docs[untyped]
    assert list(docs) == [md, plain, untyped, xhtml, mislabelled, html_site.url("click/quickstart.html")]


def test_only_unreadable_types_fail_the_slot_with_each_reason(html_site, tmp_path) -> None:
    slot = agent_slot(html_site.serve("a.pdf", PDF, "application/pdf"), html_site.serve("b.pdf", PDF, "application/pdf"))
    with pytest.raises(ScrapeError, match=r"no URL is a page this kind reads: .*a\.pdf \(content type application/pdf"):
        collect(slot, tmp_path)


def test_a_page_without_text_is_a_soft_drop(html_site, tmp_path) -> None:
    spa = html_site.serve("app.html", '<html><body><div id="root"></div><script src="app.js"></script></body></html>',
                          "text/html")
    result = collect(agent_slot(spa, html_site.url("jinja2/tricks.html")), tmp_path)
    assert result.reports[0]["status"] == "dropped" and "rendered by JavaScript" in result.reports[0]["reason"]
    assert [d.url for d in result.documents] == [html_site.url("jinja2/tricks.html")]
    with pytest.raises(ScrapeError, match=r"no page gave any text: .*app\.html \(no text in the page"):
        collect(agent_slot(spa), tmp_path)


def test_a_page_the_converter_refuses_is_a_soft_drop(html_site, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(extract, "MAX_CONVERT_BYTES", 30_000)  # the real library's limit, lowered
    result = collect(agent_slot(html_site.url("click/options.html"), html_site.url("jinja2/tricks.html")), tmp_path)
    assert result.reports[0]["status"] == "dropped"
    assert "html-to-markdown could not convert the page (InputTooLargeError" in result.reports[0]["reason"]
    assert [d.url for d in result.documents] == [html_site.url("jinja2/tricks.html")]


def test_missing_pages_follow_the_fetch_policy(html_site, tmp_path) -> None:
    slot = agent_slot(html_site.url("click/nope.html"), html_site.url("click/gone.html"), html_site.url("click/quickstart.html"))
    with pytest.raises(ScrapeError, match="2 of 3 URLs could not be fetched"):
        collect(slot, tmp_path)


def test_endpoint_route_answers_every_section_and_caches_it(html_site, with_endpoint, tmp_path) -> None:
    slot = agent_slot(html_site.url("click/quickstart.html"), html_site.url("jinja2/templates.html"))
    first = collect(slot, tmp_path)
    templates = first.reports[1]
    # ~90 KB of extracted markdown: split by section under the 48 KiB cap, nothing cut off
    assert len(first.documents[1].markdown.encode()) > 48 * 1024
    assert templates["route"] == "endpoint" and templates["sections"] >= 2 and templates["fallbacks"] == []
    assert templates["sections_from_endpoint"] == templates["sections"]
    assert max(len(r.body["messages"][1]["content"].encode()) for r in with_endpoint.chats()) <= 48 * 1024
    doc = first.documents[1].markdown
    assert "\u2019" not in doc  # the answer (apostrophes made plain), not the fallback
    assert len(code_blocks(doc)) == templates["code_blocks"] == 142
    asked = len(with_endpoint.chats())
    assert asked == templates["sections"] + 1
    # a rebuild asks nothing: every section comes from the answer cache, same bytes
    with_endpoint.stop()
    again = collect(slot, tmp_path)
    assert [d.markdown for d in again.documents] == [d.markdown for d in first.documents]
    assert again.reports == first.reports


@pytest.mark.parametrize("mode, reason", [
    ("invent", "the answer has a code block not in the page"),
    ("drop", "the answer lost or changed a code block"),
    ("500", "endpoint: HTTP 500, 2 attempts"),
    ("malformed", "endpoint: malformed answer"),
    ("slow", "endpoint: no answer within 0.5 s"),
])
def test_a_bad_answer_falls_back_to_the_extracted_section(mode, reason, html_site, with_endpoint, tmp_path) -> None:
    url = html_site.url("click/quickstart.html")
    with_endpoint.mode = mode
    result = collect(agent_slot(url), tmp_path)
    report = result.reports[0]
    assert report["status"] == "ok" and report["sections"] == 1 and report["sections_from_endpoint"] == 0
    assert len(report["fallbacks"]) == 1 and reason in report["fallbacks"][0]["reason"]
    assert "kept as extracted" in report["fallbacks"][0]["reason"]
    assert "\u2019" in result.documents[0].markdown and "rm -rf" not in result.documents[0].markdown
    assert len(code_blocks(result.documents[0].markdown)) == 19
    assert not (tmp_path / DIRECTORY).exists()  # failures are never cached: the next build asks again


def test_thinking_and_a_wrapping_markdown_fence_are_removed(html_site, with_endpoint, tmp_path) -> None:
    url = html_site.url("click/quickstart.html")
    with_endpoint.mode = "wrapped"
    wrapped = collect(agent_slot(url), tmp_path)
    with_endpoint.mode = "echo"
    plain = collect(agent_slot(url), tmp_path / "other-cache")
    assert wrapped.reports[0]["fallbacks"] == [] and wrapped.documents[0].markdown == plain.documents[0].markdown
    assert "<think>" not in wrapped.documents[0].markdown


def test_whitespace_drift_in_code_is_accepted_and_the_page_bytes_kept(html_site, with_endpoint, tmp_path) -> None:
    url = html_site.url("click/quickstart.html")
    with_endpoint.mode = "whitespace"  # the fake doubles the indentation of every code line
    result = collect(agent_slot(url), tmp_path)
    assert result.reports[0]["fallbacks"] == []
    assert "\n    click.echo('Hello World!')" in with_endpoint.chats()[0].body["messages"][1]["content"]
    with_endpoint.mode = "echo"
    reference = collect(agent_slot(url), tmp_path / "other-cache")
    assert result.documents[0].markdown == reference.documents[0].markdown
    assert "\n    click.echo('Hello World!')" in result.documents[0].markdown


def test_endpoint_down_at_start_up_fails_the_slot_fast(html_site, monkeypatch, tmp_path) -> None:
    with serve_llm() as server:
        endpoint = server.endpoint
    monkeypatch.setenv("DEADZONE_AGENT_ENDPOINT", endpoint)
    monkeypatch.setenv("DEADZONE_AGENT_ENDPOINT_MODEL", MODEL)
    with pytest.raises(ScrapeError, match=r"/pallets/docs: agent endpoint .* does not answer .*1 of 1 sections "
                                          r"are not in the answer cache"):
        collect(agent_slot(html_site.url("click/quickstart.html")), tmp_path)


def test_endpoint_without_model_is_a_clear_error(html_site, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("DEADZONE_AGENT_ENDPOINT", "http://127.0.0.1:9/v1")
    with pytest.raises(ScrapeError, match="DEADZONE_AGENT_ENDPOINT_MODEL is not"):
        collect(agent_slot(html_site.url("click/quickstart.html")), tmp_path)


def test_route_is_in_the_key_of_agent_slots_only(monkeypatch) -> None:
    agent = agent_slot("https://docs.example.org/index.html")
    md = parse_registry("libraries:\n  - lib_id: /a/b\n    kind: github-md\n    urls: [https://x.org/R.md]\n",
                        Path("r.yaml"))[0]
    before = {"agent": slot_key(agent), "md": slot_key(md)}
    assert key_inputs(agent)["source"]["route"] == "deterministic" and "source" not in key_inputs(md)
    monkeypatch.setenv("DEADZONE_AGENT_ENDPOINT", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("DEADZONE_AGENT_ENDPOINT_MODEL", "model-a")
    with_a = slot_key(agent)
    monkeypatch.setenv("DEADZONE_AGENT_ENDPOINT_API_KEY", "sk-1")
    monkeypatch.setenv("DEADZONE_AGENT_ENDPOINT", "http://other-host:8080/v1")
    assert slot_key(agent) == with_a  # neither the key nor the host changes what is built
    monkeypatch.setenv("DEADZONE_AGENT_ENDPOINT_MODEL", "model-b")
    assert len({before["agent"], with_a, slot_key(agent)}) == 3
    assert slot_key(md) == before["md"]
    assert key_inputs(agent)["source"] == {"extractor": {"html-to-markdown": "3.21.2", "selectolax": "1.0.2"},
                                           "extract_rules": "1", "route": "endpoint", "model": "model-b",
                                           "prompt_version": "1"}


def test_a_single_block_over_the_input_cap_is_kept_as_extracted(html_site, with_endpoint, tmp_path) -> None:
    code = "\n".join(f"line_{i} = {i} * 2  # generated" for i in range(3000))  # ~100 KB, one <pre>
    page = html_site.serve("big.html", f"<html><body><main><h1>Big</h1><p>Intro.</p><pre>{code}</pre>"
                                       "<h2>After</h2><p>Tail’s text.</p></main></body></html>", "text/html")
    result = collect(agent_slot(page), tmp_path)
    report = result.reports[0]
    assert report["sections"] == 3 and report["sections_from_endpoint"] == 2
    assert report["fallbacks"] == [{"section": 1, "reason": "one block over the input cap of 49152 bytes: "
                                                            "kept as extracted"}]
    assert [b.content for b in code_blocks(result.documents[0].markdown)] == [code]
    assert "Tail's text." in result.documents[0].markdown  # the sections around it were answered
    assert all(code not in r.body["messages"][1]["content"] for r in with_endpoint.chats())
