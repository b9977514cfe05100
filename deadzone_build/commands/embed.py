"""`deadzone-build embed`: print the embedding vectors of some texts (debugging and checks)."""

from __future__ import annotations

import argparse
import json
import sys

from deadzone_build import settings

NAME = "embed"
HELP = ("Print the 384-d embedding of each TEXT (on first use, fetches the pinned model files and builds "
        "the model under $DEADZONE_CACHE, default ./cache).")
EXAMPLE = 'deadzone-build embed --json "how do I add a subcommand?"'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="+", metavar="TEXT", help="text to embed (one vector each)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object: pin_id and, per text, word pieces, truncated, vector")


def _progress(message: str) -> None:
    print(f"deadzone-build embed: {message}", file=sys.stderr, flush=True)


def _float(value: float) -> float:
    return float(f"{value:.9g}")  # 9 significant digits round-trip a float32 exactly


def run(args: argparse.Namespace) -> int:
    from deadzone_build.embed.embedder import Embedder
    from deadzone_build.embed.model_files import TokenCounter
    from deadzone_build.embed.pin import MAX_SEQ_LENGTH

    embedder = Embedder(settings.cache_dir(), progress=_progress)
    vectors = embedder.embed(args.texts)
    pieces = TokenCounter(settings.cache_dir())(args.texts)
    rows = [{"text": text, "word_pieces": n, "truncated": n > MAX_SEQ_LENGTH,
             "vector": [_float(x) for x in vector]}
            for text, n, vector in zip(args.texts, pieces, vectors)]
    if args.json:
        print(json.dumps({"pin_id": embedder.pin_id, "dimension": vectors.shape[1], "vectors": rows}))
        return 0
    for row in rows:
        note = f", truncated to {MAX_SEQ_LENGTH}" if row["truncated"] else ""
        print(f"# {row['text']!r} ({row['word_pieces']} word pieces{note})")
        print(" ".join(f"{x:.7f}" for x in row["vector"]))
    return 0
