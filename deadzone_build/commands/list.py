"""`deadzone-build list`: the registry's slots with their content keys."""

from __future__ import annotations

import argparse
import json

from deadzone_build.registry.keys import slot_key
from deadzone_build.commands.options import add_registry_arguments, selected_slots

NAME = "list"
HELP = "List the registry's slots (one per library version) with their content keys."
EXAMPLE = "deadzone-build list --lib /spf13/cobra --json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON array")


def run(args: argparse.Namespace) -> int:
    rows = [
        {"lib_id": s.lib_id, "version": s.version, "slug": s.slug, "kind": s.kind, "ref": s.ref,
         "urls": len(s.urls), "key": slot_key(s)}
        for s in selected_slots(args)
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    columns = ("slug", "lib_id", "version", "kind", "urls")  # SLUG first: what explain and doit scrape:<slug> take
    widths = {c: max([len(c), *(len(str(r[c])) for r in rows)]) for c in columns}
    header = "  ".join(c.upper().ljust(widths[c]) for c in widths) + "  KEY"
    print(header)
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in widths) + "  " + r["key"])
    print(f"{len(rows)} slot{'s' if len(rows) != 1 else ''}")
    return 0
