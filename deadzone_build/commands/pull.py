"""`deadzone-build pull`: rebuild artifacts from a deadzone.db so doit skips those slots."""

from __future__ import annotations

import argparse
import json
import sys

from deadzone_build import settings
from deadzone_build.errors import DatabaseError
from deadzone_build.commands.options import add_artifacts_argument, add_db_argument, add_registry_arguments, selected_slots

NAME = "pull"
HELP = "Recreate artifacts/<slug>/ byte for byte for every registry slot whose key the db holds."
EXAMPLE = "deadzone-build pull --db deadzone.db --artifacts artifacts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    add_db_argument(parser, "database to read")
    add_artifacts_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from deadzone_build.db.pull import pull

    log = (lambda line: None) if args.json else (lambda line: print(line, file=sys.stderr))
    result = pull(settings.db_path(args.db), slots=selected_slots(args),
                  artifacts_dir=settings.artifacts_dir(args.artifacts), log=log)
    if args.json:
        print(json.dumps(result.__dict__, indent=1))
    else:
        print(f"pull: {len(result.written)} written, {len(result.current)} already current, "
              f"{len(result.absent)} not in the db (scrape those), {len(result.failed)} refused")
    if result.failed:
        raise DatabaseError("the db's rows for " + ", ".join(result.failed) + " do not verify against their "
                            "stored meta.json:\n  " + "\n  ".join(result.failed.values()) +
                            "\nDownload the db again, or scrape those slots.")
    return 0
