"""The `deadzone-build` command line: a thin layer over the library.

Each subcommand lives in `deadzone_build/commands/<name>.py` and exposes `NAME`, `HELP`,
`EXAMPLE`, `add_arguments(parser)` and `run(args) -> int`. The library raises
`DeadzoneError`; this module prints it and exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    command = "deadzone-build"
    try:
        args = build_parser().parse_args(argv)
        command = f"deadzone-build {args.command}"
        status = int(args.run(args) or 0)
        sys.stdout.flush()  # a closed reader surfaces here, not in the interpreter's final flush
        return status
    except DeadzoneError as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{command}: interrupted; nothing half-written was kept (the previous state is intact).",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): not an error. Point stdout at /dev/null so the
        # interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141  # 128 + SIGPIPE, what the shell reports for a killed writer


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
