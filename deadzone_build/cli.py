"""The `deadzone-build` command line: a thin layer over the library.

Each subcommand lives in `deadzone_build/commands/<name>.py` and exposes `NAME`, `HELP`,
`EXAMPLE`, `add_arguments(parser)` and `run(args) -> int`. The library raises
`DeadzoneError`; this module prints it and exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from deadzone_build import __version__
from deadzone_build.errors import DeadzoneError

COMMAND_MODULES = (
    "list",
    "scrape",
    "explain",
    "embed",
    "pin",
    "model-files",
    "consolidate",
    "search",
    "libs",
    "pull",
    "release",
    "fetch-release",
    "plan",
    "summary",
    "serve",
    "lock",
    "outdated",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deadzone-build",
        description="Build offline documentation indexes (deadzone.db) from libraries_sources.yaml.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"deadzone_build.commands.{name.replace('-', '_')}")
        command = sub.add_parser(
            module.NAME, help=module.HELP, description=module.HELP,
            epilog=f"example: {module.EXAMPLE}", formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except DeadzoneError as exc:
        print(f"deadzone-build {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"deadzone-build {args.command}: interrupted; nothing half-written was kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
