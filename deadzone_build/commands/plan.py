"""`deadzone-build plan`: which slots need a CI job, sharded for the workflow's matrices."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from deadzone_build.atomic import write_atomic
from deadzone_build.errors import PlanError
from deadzone_build.ci.plan import (MATRIX_LIMIT, Plan, cached_keys_from_file, cached_keys_from_github, fetch_base_db,
                    github_outputs, make_plan, reusable_keys)
from deadzone_build.commands.options import add_registry_arguments, selected_slots

NAME = "plan"
HELP = ("Plan a CI build: each slot is reused from the release db, restored from actions/cache, "
        "or scraped; the jobs are sharded into matrices of at most 256.")
EXAMPLE = ("deadzone-build plan --fetch-base --base-db plan/deadzone.db --github --out plan/plan.json "
           "--github-output \"$GITHUB_OUTPUT\"")
DEFAULT_SHARD_JOBS = 4  # scrape-0 .. scrape-3 in .github/workflows/scrape-pack.yml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    parser.add_argument("--base-db", metavar="PATH",
                        help="a deadzone.db (the latest release's): slots whose key it holds are reused")
    parser.add_argument("--fetch-base", nargs="?", const="latest", metavar="TAG",
                        help="first download release TAG's db (default: latest) to --base-db; "
                             "no such release plans every slot")
    cached = parser.add_mutually_exclusive_group()
    cached.add_argument("--cached-keys", metavar="FILE",
                        help="keys present in actions/cache: one per line, or JSON (list, or the API's answer)")
    cached.add_argument("--github", action="store_true",
                        help="list actions/cache keys through the REST API (GITHUB_TOKEN, GITHUB_API_URL)")
    parser.add_argument("--repo", metavar="OWNER/NAME", help="repository for --github (default: $GITHUB_REPOSITORY)")
    parser.add_argument("--cache-ref", action="append", default=[], metavar="REF",
                        help="with --github, count only caches saved on this git ref (repeatable; e.g. "
                             "\"$GITHUB_REF\" and refs/heads/main: what a run can restore). Default: every ref")
    parser.add_argument("--shard-size", type=int, default=MATRIX_LIMIT, metavar="N",
                        help=f"jobs per matrix shard (default and maximum: {MATRIX_LIMIT})")
    parser.add_argument("--shard-jobs", type=int, default=DEFAULT_SHARD_JOBS, metavar="K",
                        help=f"shard jobs the workflow has, for --github-output (default: {DEFAULT_SHARD_JOBS})")
    parser.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    parser.add_argument("--out", metavar="PATH", help="also write the plan as JSON to PATH (for `summary --plan`)")
    parser.add_argument("--github-output", metavar="PATH",
                        help="append has_work, the counts and shard_<i>/shard_<i>_size to this $GITHUB_OUTPUT file")


def run(args: argparse.Namespace) -> int:
    slots = selected_slots(args)
    base_db = _base_db(args)
    base_keys = reusable_keys(base_db, log=_stderr) if base_db else set()
    plan = make_plan(slots, base_db_keys=base_keys, cached_keys=_cached_keys(args), shard_size=args.shard_size)
    # base_db tells the consolidate job to `pull`: only when the db holds something to pull
    outputs = github_outputs(plan, args.shard_jobs, base_db=plan.counts["reused"] > 0) if args.github_output else {}
    text = json.dumps(plan.to_dict(), indent=1, ensure_ascii=False) + "\n"
    if args.out:
        write_atomic(Path(args.out), text)
    if args.github_output:
        _append_outputs(Path(args.github_output), outputs)
    if args.json:
        print(text, end="")
    else:
        _print_human(plan)
    return 0


def _base_db(args: argparse.Namespace) -> Path | None:
    if not args.fetch_base:
        return Path(args.base_db) if args.base_db else None
    if not args.base_db:
        raise PlanError("--fetch-base needs --base-db PATH: where to put the released db.")
    return fetch_base_db(args.base_db, tag=args.fetch_base, repo=args.repo, log=_stderr)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _cached_keys(args: argparse.Namespace) -> set[str]:
    if args.cached_keys:
        return cached_keys_from_file(args.cached_keys)
    if args.github:
        repo = args.repo or os.environ.get("GITHUB_REPOSITORY") or ""
        if not repo:
            raise PlanError("--github needs the repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY.")
        return cached_keys_from_github(repo, refs=set(args.cache_ref))
    if args.cache_ref:
        raise PlanError("--cache-ref filters the caches that --github lists; add --github.")
    return set()


def _append_outputs(path: Path, outputs: dict[str, str]) -> None:
    # $GITHUB_OUTPUT is shared by the step: append, one `name=value` line each (values are one line)
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(f"{name}={value}\n" for name, value in outputs.items())


def _print_human(plan: Plan) -> None:
    c = plan.counts
    print(f"{c['total']} slots: {c['reused']} reused from the release db, {c['cached']} in actions/cache, "
          f"{c['to_scrape']} to scrape")
    for index, shard in enumerate(plan.shards):
        print(f"shard {index}: {len(shard)} job{'s' if len(shard) != 1 else ''}")
    for row in plan.slots:
        if row["source"] != "release":
            print(f"  {row['source']:<7} {row['slug']}  {row['key']}")
    if not plan.has_work:
        print("nothing to scrape: every artifact is in the release db")
