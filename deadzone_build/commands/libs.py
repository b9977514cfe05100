"""`deadzone-build libs`: which libraries of deadzone.db match a query."""

from __future__ import annotations

import argparse
import json

from deadzone_build import settings
from deadzone_build.commands.search import add_db_arguments, query_embedder

NAME = "libs"
HELP = ("Rank the libraries in deadzone.db by their description embedding and a whole-word match of the "
        "query on the lib_id's project name.")
EXAMPLE = 'deadzone-build libs "go command line flags" --limit 5'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_db_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from deadzone_build.db.schema import open_checked
    from deadzone_build.db.search import libs

    db = settings.db_path(args.db)
    open_checked(db).close()
    hits = libs(db, args.query, embedder=query_embedder(), limit=args.limit)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], indent=1, ensure_ascii=False))
        return 0
    for hit in hits:
        where = f"{hit.lib_id}@{hit.version}" if hit.version else hit.lib_id
        print(f"{where}  ({hit.chunks} chunks, {hit.score:.4f})  {hit.description}")
    return 0
