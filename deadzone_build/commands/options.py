"""Options several subcommands share, so each reads and documents them the same way."""

from __future__ import annotations

import argparse

from deadzone_build import settings
from deadzone_build.registry.load import Slot, load_registry, select_slots


def add_registry_arguments(parser: argparse.ArgumentParser) -> None:
    """--registry/--lib/--version, shared by every command that selects slots."""
    parser.add_argument("--registry", metavar="PATH",
                        help="registry file (default: $DEADZONE_REGISTRY, else ./libraries_sources.yaml)")
    parser.add_argument("--lib", metavar="LIB_ID", help="only this library, e.g. /spf13/cobra")
    parser.add_argument("--version", dest="lib_version", metavar="V",
                        help="only this version of --lib (e.g. 1.10)")


def selected_slots(args: argparse.Namespace) -> list[Slot]:
    slots = load_registry(settings.registry_path(args.registry))
    return select_slots(slots, args.lib, args.lib_version)


def add_artifacts_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--artifacts", metavar="DIR",
                        help="artifacts directory (default: $DEADZONE_ARTIFACTS or ./artifacts)")


def add_db_argument(parser: argparse.ArgumentParser, role: str = "database") -> None:
    parser.add_argument("--db", metavar="PATH", help=f"{role} (default: $DEADZONE_DB or ./deadzone.db)")
