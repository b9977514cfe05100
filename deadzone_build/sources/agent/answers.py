"""The content-addressed cache of endpoint answers: the same request never needs the endpoint twice.

    cache/agent-answers/<d[:2]>/<d>.json     d = blake3(canonical JSON of
                                                  {"model", "prompt_version", "request": request body})

An LLM's answer may change from run to run; the build may not. So every verified answer is stored
under the digest of what produced it, and a rebuild (or another machine given the cache directory)
reads it instead of asking again: same request, same bytes, no endpoint needed. Only answers that
passed the code-block check are stored; a failure is retried on the next build. The endpoint URL and
API key are not in the digest (the same model behind another host is the same answer) and the key
is never written. Writes are atomic (temp file, then rename); a damaged entry is a miss, not an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import blake3

from deadzone_build.atomic import write_atomic
from deadzone_build.embed.pin import canonical_json

DIRECTORY = "agent-answers"
FORMAT = 1


def answer_digest(model: str, prompt_version: str, request: dict[str, Any]) -> str:
    return blake3.blake3(canonical_json({"model": model, "prompt_version": prompt_version,
                                         "request": request}).encode()).hexdigest()


class AnswerCache:
    """Answers under `cache_dir/agent-answers/`. Safe to share between threads and processes
    (each entry is written once, atomically, and identical writers write identical bytes)."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir) / DIRECTORY

    def path_for(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, digest: str) -> str | None:
        try:
            entry = json.loads(self.path_for(digest).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("digest") != digest \
                or not isinstance(entry.get("content"), str):
            return None
        return entry["content"]

    def put(self, digest: str, content: str, *, model: str) -> None:
        entry = {"format": FORMAT, "digest": digest, "model": model, "content": content}
        write_atomic(self.path_for(digest), json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
