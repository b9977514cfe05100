"""Benchmark: clean + chunk every document of the docs mirror (tests/fixtures/docs-mirror).

    /tmp/venv/bin/python bench/chunk.py [--repeat 3]

Measured in the same run, on the same cleaned markdown, best of `--repeat`:

  ours      chunk_markdown as the build calls it (one tokenizer pass per document, pieces read
            off the token offsets)
  plain     chunk_markdown with a wrapped count_tokens (no offsets: every piece and every
            planned chunk counted, in one batch per level)
  naive     the baseline a first version usually is: per section, paragraphs appended one by
            one, re-counting the growing chunk with one count_tokens call per paragraph (no
            batching; and no line/sentence fallback, so its chunks may not even fit)

Prints docs/s, chunks, mean tokens per chunk, and naive/ours and plain/ours time ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deadzone_build.embed import model_files  # noqa: E402
from deadzone_build.pipeline.chunk import chunk_markdown  # noqa: E402
from deadzone_build.pipeline.sections import section_texts  # noqa: E402
from deadzone_build.pipeline.clean import document_markdown  # noqa: E402

MIRROR = REPO / "tests" / "fixtures" / "docs-mirror"


def load_mirror() -> list[tuple[str, str]]:
    index = json.loads((MIRROR / "index.json").read_text())
    return [(url, (MIRROR / "files" / entry["sha256"]).read_text(encoding="utf-8"))
            for url, entry in index.items()]


def naive_chunks(markdown: str, max_tokens: int = 256) -> list[tuple[tuple[str, ...], str, int]]:
    out = []
    for path, text in section_texts(markdown):
        prefix = " > ".join(path) + "\n\n" if path else ""
        current = ""
        for paragraph in (p for p in text.split("\n\n") if p.strip()):
            candidate = f"{current}\n\n{paragraph}" if current else paragraph
            if model_files.count_tokens([prefix + candidate])[0] <= max_tokens or not current:
                current = candidate
            else:
                out.append((path, current, model_files.count_tokens([prefix + current])[0]))
                current = paragraph
        if current:
            out.append((path, current, model_files.count_tokens([prefix + current])[0]))
    return out


def best_time(run, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    docs = load_mirror()
    megabytes = sum(len(body.encode()) for _, body in docs) / 1e6
    model_files.count_tokens(["warm the tokenizer up"])

    clean_s, cleaned = best_time(
        lambda: [(url, document_markdown(body, kind="github-md", url=url)) for url, body in docs], args.repeat)
    ours_s, ours = best_time(lambda: [chunk_markdown(md, url) for url, md in cleaned], args.repeat)

    def wrapped(texts: list[str]) -> list[int]:
        return model_files.count_tokens(texts)

    plain_s, plain = best_time(
        lambda: [chunk_markdown(md, url, count_tokens=wrapped) for url, md in cleaned], args.repeat)
    naive_s, naive = best_time(lambda: [naive_chunks(md) for _, md in cleaned], 1)

    chunks = [c for doc in ours for c in doc]
    naive_flat = [c for doc in naive for c in doc]
    print(f"documents            {len(docs)} ({megabytes:.1f} MB)")
    print(f"clean                {clean_s:6.2f} s  {len(docs) / clean_s:7.1f} docs/s")
    print(f"chunk (ours)         {ours_s:6.2f} s  {len(docs) / ours_s:7.1f} docs/s")
    print(f"clean + chunk        {clean_s + ours_s:6.2f} s  {len(docs) / (clean_s + ours_s):7.1f} docs/s")
    print(f"chunks               {len(chunks)}  mean {statistics.mean(c.tokens for c in chunks):.1f} "
          f"tokens  max {max(c.tokens for c in chunks)}  under 48: {sum(c.tokens < 48 for c in chunks)}")
    print(f"chunk (plain count)  {plain_s:6.2f} s  same chunks: {plain == ours}")
    print(f"chunk (naive)        {naive_s:6.2f} s  chunks {len(naive_flat)}  "
          f"over 256: {sum(t > 256 for _, _, t in naive_flat)}")
    print(f"ratio naive/ours     {naive_s / ours_s:6.1f}x")
    print(f"ratio plain/ours     {plain_s / ours_s:6.1f}x")


if __name__ == "__main__":
    main()
