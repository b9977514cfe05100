"""`deadzone-build release`: gate deadzone.db, then publish it to a GitHub Release."""

from __future__ import annotations

import argparse
import json
import sys
from deadzone_build import __version__, settings

NAME = "release"
HELP = ("Publish deadzone.db, deadzone.db.sha256 and manifest.json to a GitHub Release, after checking the db "
        "(idempotent: an identical release uploads nothing; an interrupted one is repaired).")
EXAMPLE = "GITHUB_TOKEN=... deadzone-build release --tag v0.1.0 --repo laradji/deadzone --expect-version"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tag", required=True, help="release tag, e.g. v0.1.0 (created if missing)")
    parser.add_argument("--repo", metavar="OWNER/NAME", help="GitHub repository (default: $GITHUB_REPOSITORY)")
    parser.add_argument("--db", metavar="PATH",
                        help="the db to publish; its .sha256 and manifest.json sit beside it "
                             "(default: $DEADZONE_DB, else ./deadzone.db)")
    parser.add_argument("--registry", metavar="PATH",
                        help="registry the db must be built from (default: $DEADZONE_REGISTRY, else "
                             "./libraries_sources.yaml)")
    parser.add_argument("--draft", action="store_true",
                        help="keep the release a draft (an already published one stays published)")
    parser.add_argument("--dry-run", action="store_true", help="run the checks, show what would be uploaded")
    parser.add_argument("--allow-missing", action="store_true",
                        help="publish even if some registry slots have no artifact in the db")
    parser.add_argument("--expect-version", nargs="?", const=__version__, metavar="V",
                        help=f"fail unless the tag is V or vV (bare flag: this package's {__version__})")
    parser.add_argument("--json", action="store_true", help="print the outcome as one JSON object")


def run(args: argparse.Namespace) -> int:
    from deadzone_build.publish.release import release_db  # ghapi: only when asked
    from deadzone_build.publish.report import summary

    outcome = release_db(
        tag=args.tag, repo=args.repo, db=settings.db_path(args.db), registry=settings.registry_path(args.registry),
        draft=args.draft, dry_run=args.dry_run, allow_missing=args.allow_missing,
        expect_version=args.expect_version, log=lambda line: print(line, file=sys.stderr),
    )
    print(json.dumps(outcome.as_dict(), indent=1) if args.json else summary(outcome))
    return 0
