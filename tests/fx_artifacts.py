"""Synthetic artifacts: made-up chunks and random unit vectors, written with the real `write_artifact`.

`make_slot` builds a registry Slot; `write_fake_artifact` writes a deterministic artifact for it
(same slot + seed -> same bytes). Fixtures: `artifacts_dir`, `fake_slots` (three slots, one with a
version), `fake_artifacts` (those slots written to `artifacts_dir`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import pytest

from deadzone_build.pipeline.artifact import DIMENSION, write_artifact
from deadzone_build.registry.keys import key_inputs, slot_key
from deadzone_build.embed.pin import pin_id
from deadzone_build.registry.load import Slot, slug_for

WORDS = ("router handler middleware request response context cookie session template render "
         "stream buffer socket timeout retry parser token schema query index cache worker queue").split()


def make_slot(lib_id: str = "/acme/widgets", version: str = "", description: str = "Widgets for tests.",
              urls: tuple[str, ...] | None = None) -> Slot:
    urls = urls or (f"https://raw.githubusercontent.com{lib_id}/main/README.md",
                    f"https://raw.githubusercontent.com{lib_id}/main/docs/guide.md")
    return Slot(lib_id=lib_id, version=version, kind="github-md", ref="", urls=tuple(urls),
                description=description, slug=slug_for(lib_id, version))


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fake_chunks(slot: Slot, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """n chunks spread over the slot's URLs, with a few words and the library name in every text."""
    chunks = []
    name = slot.lib_id.rsplit("/", 1)[-1]
    for i in range(n):
        url = slot.urls[i % len(slot.urls)]
        words = " ".join(rng.choice(WORDS, size=12))
        text = f"{name} section {i}: {words}.\n\n```python\n{name}.call_{i}()\n```"
        chunks.append({"url": url, "heading_path": [name.title(), f"Part {i // 3}"], "ordinal": i,
                       "text": text, "tokens": 20 + i % 7})
    return chunks


def url_reports(slot: Slot, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"url": url, "status": "ok", "http_status": 200, "bytes": 100 + i, "sha256": f"{i:064x}",
             "chunks": sum(1 for c in chunks if c["url"] == url), "reason": ""}
            for i, url in enumerate(slot.urls)]


def fake_payload(slot: Slot, n_chunks: int = 6, seed: int = 0) -> dict[str, Any]:
    """Keyword arguments for `write_artifact` (after artifacts_dir and slot)."""
    rng = np.random.default_rng([seed, *slot.slug.encode()])
    chunks = fake_chunks(slot, n_chunks, rng)
    reports = url_reports(slot, chunks)
    return {
        "key": slot_key(slot), "key_inputs": key_inputs(slot), "pin_id": pin_id(), "chunks": chunks,
        "vectors": unit_vectors(rng, n_chunks), "library_vector": unit_vectors(rng, 1)[0],
        "url_reports": reports,
        "counts": {"urls": len(slot.urls), "docs_ok": len(slot.urls), "docs_dropped": 0,
                   "chunks": n_chunks, "tokens": sum(c["tokens"] for c in chunks)},
    }


def write_fake_artifact(artifacts_dir: Path, slot: Slot, n_chunks: int = 6, seed: int = 0) -> Path:
    return write_artifact(artifacts_dir, slot, **fake_payload(slot, n_chunks, seed))


@pytest.fixture
def artifacts_dir(tmp_path: Path) -> Path:
    path = tmp_path / "artifacts"
    path.mkdir()
    return path


@pytest.fixture
def fake_slots() -> list[Slot]:
    return [make_slot("/acme/widgets", description="Widgets: routers and handlers."),
            make_slot("/acme/gadgets", version="2.1", description="Gadgets with sockets and streams."),
            make_slot("/zeta/tools", description="Tools for parsing tokens.")]


@pytest.fixture
def fake_artifacts(artifacts_dir: Path, fake_slots: list[Slot]) -> Path:
    for i, slot in enumerate(fake_slots):
        write_fake_artifact(artifacts_dir, slot, n_chunks=5 + i)
    return artifacts_dir


# ── text artifacts with a stand-in embedder (search tests) ───────────────────


class HashEmbedder:
    """A small deterministic stand-in for the model: the normalised sum of one fixed random unit vector
    per lower-cased word. Texts sharing words are close; `overrides` pins chosen texts to given vectors
    (to test the vector side alone, with no word in common)."""

    def __init__(self, overrides: dict[str, np.ndarray] | None = None) -> None:
        self.overrides = overrides or {}
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.stack([self._one(t) for t in texts]).astype(np.float32)

    def _one(self, text: str) -> np.ndarray:
        if text in self.overrides:
            return np.asarray(self.overrides[text], dtype=np.float32)
        total = np.zeros(DIMENSION, dtype=np.float64)
        for word in re.findall(r"\w+", text.lower()):
            seed = int.from_bytes(blake3.blake3(word.encode()).digest()[:8], "little")
            total += np.random.default_rng(seed).standard_normal(DIMENSION)
        if not total.any():
            total[0] = 1.0
        return (total / np.linalg.norm(total)).astype(np.float32)


def write_text_artifact(artifacts_dir: Path, slot: Slot, sections: list[tuple[list[str], str]],
                        embedder: Any) -> Path:
    """An artifact whose chunks are `sections` ((heading_path, text) pairs) embedded by `embedder`."""
    chunks = [{"url": slot.urls[i % len(slot.urls)], "heading_path": list(h), "ordinal": i, "text": t,
               "tokens": len(t.split()) + 2} for i, (h, t) in enumerate(sections)]
    vectors = embedder.embed([" > ".join(c["heading_path"]) + "\n" + c["text"] for c in chunks])
    library_vector = embedder.embed([f"{slot.lib_id.replace('/', ' ')} {slot.description}"])[0]
    return write_artifact(artifacts_dir, slot, key=slot_key(slot), key_inputs=key_inputs(slot), pin_id=pin_id(),
                          chunks=chunks, vectors=vectors, library_vector=library_vector,
                          url_reports=url_reports(slot, chunks),
                          counts={"urls": len(slot.urls), "docs_ok": len(slot.urls), "docs_dropped": 0})


def registry_yaml(slots: list[Slot]) -> str:
    """A libraries_sources.yaml whose slots are exactly `slots` (one entry per lib_id)."""
    by_lib: dict[str, list[Slot]] = {}
    for slot in slots:
        by_lib.setdefault(slot.lib_id, []).append(slot)
    lines = ["libraries:"]
    for lib_id, group in by_lib.items():
        first = group[0]
        lines += [f"  - lib_id: {lib_id}", f"    kind: {first.kind}", f"    description: {json.dumps(first.description)}",
                  "    urls:", *(f"      - {u}" for u in first.urls)]
        if first.version:
            lines.append("    versions:")
            lines += [f'      "{s.version}":' for s in group]
    return "\n".join(lines) + "\n"
