"""`deadzone-build lock`: record (or check) what every slot's sources resolve to."""

from __future__ import annotations

import argparse
import json

from deadzone_build import settings
from deadzone_build.commands.options import add_registry_arguments, selected_slots

NAME = "lock"
HELP = ("Refresh libraries_sources.lock with conditional requests (a 304 costs no body) and GitHub "
        "ref -> commit resolution; print what changed.")
EXAMPLE = "deadzone-build lock --check    # exit 1 when upstream changed since the lock was written"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when the lock is stale, a slot is unlocked, or a source cannot be asked")
    parser.add_argument("--missing", action="store_true",
                        help="only lock slots that have no (matching) lock entry; keep the others as they are")
    parser.add_argument("--json", action="store_true", help="print the changes, errors and request counts as JSON")


def run(args: argparse.Namespace) -> int:
    from deadzone_build.freshness.refresh import github_for_repos, refresh_lock
    from deadzone_build.registry.lock import lock_path_for, read_lock, write_lock
    from deadzone_build.sources.fetch import FetchSettings, make_client

    path = lock_path_for(settings.registry_path(args.registry))
    slots = selected_slots(args)
    fetch_settings = FetchSettings()
    with make_client(fetch_settings) as client:
        result = refresh_lock(slots, read_lock(path), client=client, settings=fetch_settings,
                              github=github_for_repos(), only_missing=args.missing)
    if not args.check:
        write_lock(path, result.entries)
    if args.json:
        print(json.dumps({"lock": str(path), "stale": result.stale, "changed_slots": result.changed_slugs(),
                          "changes": [c.__dict__ for c in result.changes], "errors": result.errors,
                          "requests": dict(result.requests)}, indent=1))
    else:
        for change in result.changes:
            print(change.line())
        for error in result.errors:
            print(f"warning: {error}")
        verb = "would change" if args.check else "changed"
        requests = ", ".join(f"{n} {k}" for k, n in sorted(result.requests.items())) or "none"
        print(f"{path}: {len(result.changed_slugs())} of {len(slots)} slots {verb} (requests: {requests})")
    if args.check and result.errors:
        print("lock --check: some sources could not be asked (warnings above), so freshness is unknown; retry.")
    return 1 if args.check and (result.stale or result.errors) else 0
