"""Kind godoc against the real go/doc: fixture packages served by a fake Contents API, every
identifier go/doc lists (tests/fixtures/godoc/golden.json) found in exactly one section."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from deadzone_build.errors import ScrapeError
from deadzone_build.pipeline.chunk import chunk_markdown
from deadzone_build.embed.pin import MAX_SEQ_LENGTH
from deadzone_build.registry.keys import key_inputs
from deadzone_build.registry.load import parse_registry
from deadzone_build.sources import fetch
from deadzone_build.sources.base import SourceContext, source_for
from deadzone_build.sources.godoc.constraints import package_files
from deadzone_build.sources.godoc.parse import parse_file
from deadzone_build.sources.godoc.reader import read_package
from fx_godoc import GODOC_FIXTURES

GOLDEN = json.loads((GODOC_FIXTURES / "golden.json").read_text())
FAST = fetch.FetchSettings(retries=2, backoff_base=0.01, max_retry_after=5)


def _slot(*urls: str, ref: str = "go1.26.2"):
    lines = "".join(f"      - {u}\n" for u in urls)
    text = f"libraries:\n  - lib_id: /golang/go/x\n    kind: godoc\n    ref: {ref}\n    urls:\n{lines}"
    return parse_registry(text)[0]


def _contents(pkg: str) -> str:
    return f"https://api.github.com/repos/golang/go/contents/src/{pkg}?ref={{ref}}"


def _collect(slot, settings=FAST):
    with fetch.make_client(settings) as client:
        return source_for(slot)(slot, SourceContext(client, settings))


def _norm(text: str) -> str:
    return " ".join(text.split())


def _declares(path: tuple[str, ...], pkg: dict, kind: str, name: str, owner: str | None) -> bool:
    """Does the heading path's last title declare this identifier (the render.py formats)?"""
    ip, short = pkg["import_path"], pkg["name"]
    if not path or path[0] != ip:
        return False
    if owner is None:
        if len(path) != 2:
            return False
        leaf = path[1]
        if kind in ("const", "var"):
            return leaf.startswith(kind + " ") and name in leaf[len(kind) + 1:].split(", ")
        return leaf == f"{short}.{name}"
    if len(path) != 3 or path[1] != f"{short}.{owner}":
        return False
    leaf = path[2]
    if kind in ("const", "var"):
        return leaf.startswith(kind + " ") and name in leaf[len(kind) + 1:].split(", ")
    if kind == "method":
        return bool(re.fullmatch(rf"func \([^)]*\b{owner}\b[^)]*\) {name}", leaf))
    return leaf == f"func {name}"


def _golden_identifiers(pkg: dict):
    for kind in ("consts", "vars"):
        for v in pkg[kind]:
            for n in v["names"]:
                yield kind[:-1], n, None, v["doc"]
    for f in pkg["funcs"]:
        yield "func", f["name"], None, f["doc"]
    for t in pkg["types"]:
        yield "type", t["name"], None, t["doc"]
        for kind in ("consts", "vars"):
            for v in t[kind]:
                for n in v["names"]:
                    yield kind[:-1], n, t["name"], v["doc"]
        for f in t["funcs"]:
            yield "func", f["name"], t["name"], f["doc"]
        for m in t["methods"]:
            yield "method", m["name"], t["name"], m["doc"]


@pytest.mark.parametrize("pkg", GOLDEN, ids=[p["import_path"] for p in GOLDEN])
def test_every_go_doc_identifier_is_in_exactly_one_section_with_its_doc(pkg, godoc_server):
    result = _collect(_slot(_contents(pkg["import_path"])))
    assert [r["status"] for r in result.reports] == ["ok"]
    sections: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for document in result.documents:
        for chunk in chunk_markdown(document.markdown, document.url):
            assert chunk.tokens <= MAX_SEQ_LENGTH
            sections[chunk.heading_path].append(chunk.text)
    package_text = _norm("\n".join(sections[(pkg["import_path"],)]))
    assert _norm(pkg["doc"]) in package_text
    for kind, name, owner, doc in _golden_identifiers(pkg):
        found = [path for path in sections if _declares(path, pkg, kind, name, owner)]
        assert len(found) == 1, (kind, name, owner, found)
        text = _norm("\n".join(sections[found[0]]))
        assert _norm(doc) in text, (kind, name, owner)


@pytest.mark.parametrize("pkg", GOLDEN, ids=[p["import_path"] for p in GOLDEN])
def test_reader_matches_go_doc(pkg):
    directory = GODOC_FIXTURES / "src" / pkg["import_path"]
    files = {p.name: p.read_bytes() for p in directory.iterdir()}
    names = package_files(files)
    assert names == pkg["files"]
    package = read_package(pkg["import_path"], [parse_file(n, files[n]) for n in names])
    assert package.doc == pkg["doc"]
    assert sorted((n.marker, n.uid, n.body) for n in package.notes) == \
        sorted((m, n["uid"], n["body"]) for m, notes in pkg["notes"].items() for n in notes)
    def values(vs):
        return [(v.names, v.doc) for v in vs]
    assert values(package.consts) == [(v["names"], v["doc"]) for v in pkg["consts"]]
    assert values(package.vars) == [(v["names"], v["doc"]) for v in pkg["vars"]]
    assert [(f.name, f.doc) for f in package.funcs] == [(f["name"], f["doc"]) for f in pkg["funcs"]]
    assert [t.name for t in package.types] == [t["name"] for t in pkg["types"]]
    for mine, theirs in zip(package.types, pkg["types"]):
        assert mine.doc == theirs["doc"]
        assert values(mine.consts) == [(v["names"], v["doc"]) for v in theirs["consts"]]
        assert values(mine.vars) == [(v["names"], v["doc"]) for v in theirs["vars"]]
        assert [(f.name, f.doc) for f in mine.funcs] == [(f["name"], f["doc"]) for f in theirs["funcs"]]
        assert [(m.name, m.doc, m.level) for m in mine.methods] == \
            [(m["name"], m["doc"], m.get("level", 0)) for m in theirs["methods"]]


def test_declarations_are_verbatim_in_go_fences(godoc_server):
    result = _collect(_slot(_contents("container/list")))
    markdown = "\n".join(d.markdown for d in result.documents)
    source = (GODOC_FIXTURES / "src/container/list/list.go").read_text()
    assert "```go\nfunc (l *List) PushBackList(other *List)\n```" in markdown
    element = source[source.index("type Element struct"):source.index("}\n", source.index("type Element struct")) + 1]
    assert f"```go\n{element}\n```" in markdown
    urls = {d.url for d in result.documents}
    assert "https://pkg.go.dev/container/list@go1.26.2#List.PushBackList" in urls
    assert {d.source_url for d in result.documents} == {_contents("container/list").replace("{ref}", "go1.26.2")}


def test_missing_package_is_not_found(godoc_server):
    with pytest.raises(ScrapeError, match=r"/golang/go/x: .*contents/src/cmp\?ref=go1.26.2: Go package not found \(HTTP 404"):
        _collect(_slot(_contents("cmp")))


def test_directory_without_go_files_is_not_found(godoc_server):
    with pytest.raises(ScrapeError, match="Go package not found: no buildable non-test .go files"):
        _collect(_slot(_contents("os")))  # fixture os/ holds only the signal/ subdirectory


def test_rate_limited_listing_is_retried_after_the_reset(godoc_server):
    godoc_server.rate_limit(times=1, reset_in=1)
    result = _collect(_slot(_contents("errors")))
    assert result.reports[0]["status"] == "ok"
    assert len(godoc_server.contents_calls) == 2


def test_rate_limit_resetting_later_than_the_cap_is_a_clear_slot_error(godoc_server):
    godoc_server.rate_limit(times=10, reset_in=3600)
    with pytest.raises(ScrapeError, match=r"rate limit is exhausted and resets in \d+ s.*GITHUB_TOKEN"):
        _collect(_slot(_contents("errors")))
    assert len(godoc_server.contents_calls) == 1  # no pointless waiting


def test_unknown_url_shape_is_rejected(godoc_server):
    with pytest.raises(ScrapeError, match="is not a godoc URL"):
        _collect(_slot("https://raw.githubusercontent.com/golang/go/{ref}/README.md"))


def test_godoc_key_carries_the_parser_pins_and_other_kinds_do_not():
    godoc = _slot(_contents("errors"))
    assert key_inputs(godoc, {})["source"] == {"parser": {"tree-sitter": "0.26.1", "tree-sitter-go": "0.25.0"},
                                               "godoc_format": "1"}
    md = parse_registry("libraries:\n  - lib_id: /a/b\n    kind: github-md\n    urls:\n"
                        "      - https://raw.githubusercontent.com/a/b/main/README.md\n")[0]
    assert "source" not in key_inputs(md, {})
