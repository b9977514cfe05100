"""`deadzone-build search`: hybrid (keyword + vector) search over deadzone.db."""

from __future__ import annotations

import argparse
import json

from deadzone_build import settings
from deadzone_build.commands.options import add_db_argument

NAME = "search"
HELP = ("Search deadzone.db for documentation chunks (BM25 and embeddings, fused per document with RRF; "
        "without --version, a chunk identical in several versions is one hit listing them).")
PREVIEW_LINES = 8  # lines of each hit's snippet shown (a cut inside code closes the fence)
EXAMPLE = 'deadzone-build search "persistent flags on a subcommand" --lib /spf13/cobra --limit 5'


def add_db_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", metavar="QUERY", help="what to look for, in words or API names")
    parser.add_argument("--limit", type=int, default=10, metavar="N", help="how many results (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON array")
    add_db_argument(parser, "database")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_db_arguments(parser)
    parser.add_argument("--lib", metavar="LIB_ID", help="only this library, e.g. /spf13/cobra")
    parser.add_argument("--version", dest="lib_version", metavar="V", help="only this version of --lib (without it, a chunk identical in several versions is one hit)")


def query_embedder():
    from deadzone_build.embed.embedder import Embedder  # the model loads only when a query is really run

    return Embedder(settings.cache_dir())


def run(args: argparse.Namespace) -> int:
    from deadzone_build.db.schema import open_checked
    from deadzone_build.db.search import search
    from deadzone_build.db.snippet import preview

    db = settings.db_path(args.db)
    open_checked(db).close()  # a wrong db is reported before the model loads
    hits = search(db, args.query, embedder=query_embedder(), lib=args.lib, version=args.lib_version,
                  limit=args.limit)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], indent=1, ensure_ascii=False))
        return 0
    for n, hit in enumerate(hits, start=1):
        versions = ",".join(v for v in hit.versions if v)
        where = f"{hit.lib_id}@{versions}" if versions else hit.lib_id
        print(f"{n}. {where}  {' > '.join(hit.heading_path)}  ({hit.score:.4f})\n   {hit.url}")
        print("   " + "\n   ".join(preview(hit.snippet, PREVIEW_LINES).splitlines()) + "\n")
    if not hits:
        print("no results")
    return 0
