"""Kind godoc, module proxy shape: a real module zip (Debian's google/uuid 1.3.0) from a fake
proxy, verified against a fake checksum database; the h1: in the fixture was computed by the
real `go mod download` (GOPROXY=file://..., see tests/fixtures/godoc/README.md)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from deadzone_build.errors import ScrapeError
from deadzone_build.pipeline.chunk import chunk_markdown
from deadzone_build.registry.load import parse_registry
from deadzone_build.sources import fetch
from deadzone_build.sources.base import SourceContext, source_for
from deadzone_build.sources.godoc.listing import escape_module, unescape_module
from deadzone_build.sources.godoc.proxy import hash_zip
from fx_godoc import GODOC_FIXTURES

MODULES = GODOC_FIXTURES / "modules"
ZIP = (MODULES / "github.com_google_uuid@v1.3.0.zip").read_bytes()
H1 = (MODULES / "uuid.h1").read_text().strip()
URL = "https://proxy.golang.org/github.com/google/uuid/@v/{ref}.zip"
SETTINGS = fetch.FetchSettings(retries=1, backoff_base=0.01)


def _collect(url: str = URL, ref: str = "v1.3.0"):
    slot = parse_registry(f"libraries:\n  - lib_id: /google/uuid\n    kind: godoc\n    ref: {ref}\n"
                          f"    urls:\n      - {url}\n")[0]
    with fetch.make_client(SETTINGS) as client:
        return source_for(slot)(slot, SourceContext(client, SETTINGS))


def test_hash_zip_is_gos_dirhash():
    assert hash_zip(ZIP) == H1 == "h1:1aY+M7jYjN/t3QkMtH0n7on6pQGQqG8JsO7t7lIjRxE="


def test_module_escaping_round_trips():
    assert escape_module("github.com/Azure/azure-sdk") == "github.com/!azure/azure-sdk"
    assert unescape_module("github.com/!azure/azure-sdk") == "github.com/Azure/azure-sdk"


def test_verified_module_lists_what_go_doc_lists(godoc_server):
    godoc_server.add_module("github.com/google/uuid", "v1.3.0", ZIP, H1)
    result = _collect()
    assert [r["status"] for r in result.reports] == ["ok"]
    assert result.reports[0]["url"] == URL.replace("{ref}", "v1.3.0")
    paths = {c.heading_path for d in result.documents for c in chunk_markdown(d.markdown, d.url)}
    golden = json.loads((MODULES / "golden-uuid.json").read_text())[0]
    for f in golden["funcs"]:
        assert ("github.com/google/uuid", f"uuid.{f['name']}") in paths
    for t in golden["types"]:
        assert ("github.com/google/uuid", f"uuid.{t['name']}") in paths
        for m in t["methods"]:
            assert any(len(p) == 3 and p[1] == f"uuid.{t['name']}" and p[2].endswith(f") {m['name']}")
                       for p in paths), m["name"]
        for f in t["funcs"]:
            assert ("github.com/google/uuid", f"uuid.{t['name']}", f"func {f['name']}") in paths
    assert all(d.url.startswith("https://pkg.go.dev/github.com/google/uuid@v1.3.0") for d in result.documents)


def test_wrong_h1_fails_the_slot_with_checksum_mismatch(godoc_server):
    godoc_server.add_module("github.com/google/uuid", "v1.3.0", ZIP, "h1:" + "A" * 43 + "=")
    with pytest.raises(ScrapeError, match=r"checksum mismatch for github.com/google/uuid@v1.3.0: .*hashes to "
                                          r"h1:1aY\+M7.*checksum database says h1:AAAA"):
        _collect()


def test_module_missing_from_the_proxy_is_not_found(godoc_server):
    with pytest.raises(ScrapeError, match=r"/google/uuid: .*module not found \(HTTP 404"):
        _collect()


def test_zip_slip_entry_rejects_the_zip(godoc_server):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("github.com/google/uuid@v1.3.0/uuid.go", "package uuid\n")
        archive.writestr("github.com/google/uuid@v1.3.0/../../../etc/evil.go", "package evil\n")
    evil = buffer.getvalue()
    godoc_server.add_module("github.com/google/uuid", "v1.3.0", evil, hash_zip(evil))
    with pytest.raises(ScrapeError, match=r"unsafe path .*etc/evil.go.* the zip is rejected"):
        _collect()
