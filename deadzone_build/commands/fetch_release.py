"""`deadzone-build fetch-release`: download a released deadzone.db and verify it."""

from __future__ import annotations

import argparse
import json
import sys

from deadzone_build import settings

NAME = "fetch-release"
HELP = ("Download deadzone.db from a GitHub Release, verify it against the release's deadzone.db.sha256, "
        "then move it into place (a mismatch leaves the old file untouched).")
EXAMPLE = "deadzone-build fetch-release --repo your-org/deadzone-db --tag latest --out deadzone.db"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tag", default="latest", help="release tag, or 'latest' (the default)")
    parser.add_argument("--repo", metavar="OWNER/NAME", help="GitHub repository (default: $GITHUB_REPOSITORY)")
    parser.add_argument("--out", metavar="PATH", help="where to put the db (default: $DEADZONE_DB, else ./deadzone.db)")
    parser.add_argument("--json", action="store_true", help="print {path, tag} as JSON")


def run(args: argparse.Namespace) -> int:
    from deadzone_build.publish.release import fetch_release  # ghapi: only when asked

    out = fetch_release(tag=args.tag, repo=args.repo, out=settings.db_path(args.out),
                        log=lambda line: print(line, file=sys.stderr))
    print(json.dumps({"path": str(out), "tag": args.tag}) if args.json
          else f"{out} verified against the release's deadzone.db.sha256")
    return 0
