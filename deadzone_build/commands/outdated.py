"""`deadzone-build outdated`: registry entries pinned to a tag older than upstream's newest."""

from __future__ import annotations

import argparse
import json

from deadzone_build.commands.options import add_registry_arguments, selected_slots

NAME = "outdated"
HELP = "List github-* libraries whose pinned tag is older than the upstream's newest release tag."
EXAMPLE = "deadzone-build outdated --pre    # pre-release tags count too"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    parser.add_argument("--pre", action="store_true", help="count pre-release tags (rc, beta, ...) as newer")
    parser.add_argument("--json", action="store_true", help="print one JSON array")


def run(args: argparse.Namespace) -> int:
    from deadzone_build.freshness.outdated import find_outdated
    from deadzone_build.freshness.refresh import github_for_repos

    rows = find_outdated(selected_slots(args), github=github_for_repos(), include_pre=args.pre)
    if args.json:
        print(json.dumps([r.record() for r in rows], indent=1))
        return 0
    if not rows:
        print("every tag-pinned library is at its upstream's newest tag")
        return 0
    table = [("LIB_ID", "PINNED", "LATEST", "LATEST DATE", "BEHIND")]
    table += [(r.lib_id, r.pinned, r.latest, (r.latest_date or "?")[:10],
               f"{r.behind_days} days" if r.behind_days is not None else "?") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0
