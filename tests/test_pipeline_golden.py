"""Forgetting to bump PIPELINE_VERSION must fail a test.

The chunks of a fixture library (clean → chunk, no model) are hashed and compared with the golden
digest recorded for the current PIPELINE_VERSION. When fetch/clean/chunk output changes on purpose:
bump PIPELINE_VERSION in deadzone_build/registry/keys.py (every key changes, so every slot is rebuilt) and
record the new digest here under the new version.
"""

from __future__ import annotations

import json

import blake3

from conftest import FIXTURES, MIRROR, REPO
from deadzone_build.pipeline.chunk import chunk_markdown
from deadzone_build.pipeline.clean import document_markdown
from deadzone_build.registry.keys import PIPELINE_VERSION
from deadzone_build.embed.pin import canonical_json
from deadzone_build.registry.load import load_registry, select_slots

# Named, not globbed: a fixture added for another test must not demand a PIPELINE_VERSION bump.
GOLDEN_FIXTURES = (
    ("github-md", ("md/headings.md", "md/mdx_page.mdx", "md/readme_badges.md", "md/unclosed_fence.md")),
    ("github-rst", ("rst/broken.rst", "rst/plain_readme.rst", "rst/sphinx_module.rst")),
)

GOLDEN = {
    # "1" covered only the two mirror libraries; since "2" the md/ and rst/ fixtures are in the digest too
    "2": "a2b22a888d09c8d34cb539c64002d3f855e7b53dc6faf24368cd0e58eb81cee2",
}


def pipeline_digest() -> str:
    index = json.loads((MIRROR / "index.json").read_text())
    slots = load_registry(REPO / "libraries_sources.yaml")
    lines = []
    for slot in select_slots(slots, "/direnv/direnv", "2.36") + select_slots(slots, "/knights-analytics/hugot", "0.7"):
        for url in slot.urls:
            body = (MIRROR / "files" / index[url]["sha256"]).read_text(encoding="utf-8")
            for chunk in chunk_markdown(document_markdown(body, kind=slot.kind, url=url), url):
                lines.append(canonical_json([chunk.url, list(chunk.heading_path), chunk.text, chunk.tokens]))
    # the cleaning and RST edge cases too (front matter, MDX, Sphinx roles and directives, broken RST)
    for kind, names in GOLDEN_FIXTURES:
        for path in (FIXTURES / name for name in names):
            url = f"https://raw.githubusercontent.com/fixtures/golden/v1/{path.name}"
            for chunk in chunk_markdown(document_markdown(path.read_text(encoding="utf-8"), kind=kind, url=url), url):
                lines.append(canonical_json([chunk.url, list(chunk.heading_path), chunk.text, chunk.tokens]))
    return blake3.blake3("\n".join(lines).encode()).hexdigest()


def test_pipeline_output_matches_the_golden_digest_of_this_pipeline_version() -> None:
    digest = pipeline_digest()
    assert PIPELINE_VERSION in GOLDEN, f"record GOLDEN[{PIPELINE_VERSION!r}] = {digest!r}"
    assert digest == GOLDEN[PIPELINE_VERSION], (
        f"fetch/clean/chunk output changed (digest {digest}) but PIPELINE_VERSION is still "
        f"{PIPELINE_VERSION!r}: bump it in deadzone_build/registry/keys.py and record the new digest in GOLDEN.")
