"""`deadzone-build consolidate`: the registry's artifacts → deadzone.db (+ .sha256, manifest.json)."""

from __future__ import annotations

import argparse
import json
import sys

from deadzone_build import settings
from deadzone_build.registry.keys import registry_digest
from deadzone_build.registry.load import load_registry, select_slots
from deadzone_build.commands.options import add_artifacts_argument, add_db_argument, add_registry_arguments

NAME = "consolidate"
HELP = ("Build deadzone.db from the artifacts of the registry's slots (deterministic bytes; "
        "refuses an empty db and, by default, any missing slot).")
EXAMPLE = "deadzone-build consolidate --artifacts artifacts --db deadzone.db --max-missing 3"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    add_artifacts_argument(parser)
    add_db_argument(parser, "database to write")
    parser.add_argument("--max-missing", metavar="N", type=_count, default=0,
                        help="build even when up to N slots have no current artifact (default 0, as for a release)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count of slots (0 or more)")
    return value


def run(args: argparse.Namespace) -> int:
    from deadzone_build.db.consolidate import consolidate

    every = load_registry(settings.registry_path(args.registry))
    slots = select_slots(every, args.lib, args.lib_version)
    lib_filter = "" if args.lib is None else args.lib + (f"@{args.lib_version}" if args.lib_version else "")
    log = (lambda line: None) if args.json else (lambda line: print(line, file=sys.stderr))
    result = consolidate(slots=slots, artifacts_dir=settings.artifacts_dir(args.artifacts),
                         db_path=settings.db_path(args.db), registry_digest=registry_digest(every),
                         lib_filter=lib_filter, max_missing=args.max_missing, log=log)
    if args.json:
        print(json.dumps({"db": str(result.db_path), "sha256": result.sha256, "libraries": result.libraries,
                          "chunks": result.chunks, "manifest": str(result.manifest_path),
                          "missing": [m.__dict__ for m in result.missing], "incomplete": result.incomplete},
                         indent=1))
        return 0
    for m in result.missing:
        print(f"missing {m.label} [{m.status}]: {m.reason}", file=sys.stderr)
    print(result.line())
    return 0
