"""`deadzone-build summary`: the per-slot table of a build (and the matrix jobs' status files)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from deadzone_build.errors import DeadzoneError
from deadzone_build.ci.summary import (manifest_from_plan, read_slot_statuses, record_slot_status, sources_from_plan, summary_json,
                       summary_markdown)

NAME = "summary"
HELP = ("Print what a build did per slot (scraped / cached / reused / failed, chunks, dropped URLs) "
        "from manifest.json; --record writes one matrix job's status file.")
EXAMPLE = ("deadzone-build summary --manifest manifest.json --plan plan.json --status-dir status "
           ">> \"$GITHUB_STEP_SUMMARY\"")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", metavar="PATH",
                        help="manifest.json written by consolidate (when absent, --plan stands in for it)")
    parser.add_argument("--plan", metavar="PATH", help="plan.json from `deadzone-build plan --out` (where slots came from)")
    parser.add_argument("--status-dir", metavar="DIR",
                        help="status files of the matrix jobs (<slug>.json); they override the plan")
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown", help="output format")
    record = parser.add_argument_group("recording one matrix job (needs --status-dir)")
    record.add_argument("--record", metavar="SLUG", help="write <status-dir>/<SLUG>.json instead of a summary")
    record.add_argument("--outcome", metavar="OUTCOME", help="the scrape step's outcome (success, failure, ...)")
    record.add_argument("--cache-hit", metavar="TEXT", default="",
                        help="actions/cache's cache-hit output (\"true\" on a hit, empty on a miss)")


def run(args: argparse.Namespace) -> int:
    if args.record:
        return _record(args)
    if not args.manifest:
        raise DeadzoneError("summary needs --manifest manifest.json (written by `doit consolidate`), "
                            "or --record SLUG to write a job's status.")
    plan = _read_json(Path(args.plan), "plan", "write it with `deadzone-build plan --out`") if args.plan else None
    sources = sources_from_plan(plan) if plan is not None else {}
    statuses = read_slot_statuses(args.status_dir) if args.status_dir else {}
    sources.update(statuses)
    if plan is not None and not Path(args.manifest).exists():
        manifest = manifest_from_plan(plan, statuses)  # consolidate failed: still say what happened
    else:
        manifest = _read_json(Path(args.manifest), "manifest", "run `doit consolidate` first")
    if args.format == "json":
        print(json.dumps(summary_json(manifest, sources=sources), indent=1, ensure_ascii=False))
    else:
        print(summary_markdown(manifest, sources=sources), end="")
    return 0


def _record(args: argparse.Namespace) -> int:
    if not args.status_dir or not args.outcome:
        raise DeadzoneError("--record needs --status-dir DIR and --outcome (the scrape step's outcome).")
    status = record_slot_status(args.status_dir, args.record, outcome=args.outcome, cache_hit=args.cache_hit)
    print(f"{args.record}: {status}")
    return 0


def _read_json(path: Path, what: str, fix: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeadzoneError(f"{path}: {what} not found; {fix}.") from None
    except (OSError, ValueError) as exc:
        raise DeadzoneError(f"{path}: unreadable {what} ({exc}); {fix}.") from None
