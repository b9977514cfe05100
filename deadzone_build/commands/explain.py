"""`deadzone-build explain SLUG`: is this slot's artifact current, and if not, which input changed?"""

from __future__ import annotations

import argparse
import json

from deadzone_build import settings
from deadzone_build.commands.options import add_artifacts_argument
from deadzone_build.registry.load import find_slot, load_registry

NAME = "explain"
HELP = "Say whether a slot's artifact is current and, if not, which key input changed."
EXAMPLE = "deadzone-build explain spf13_cobra_1.10"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("slug", help="the slot's slug (see `deadzone-build list`)")
    parser.add_argument("--registry", metavar="PATH", help="registry file (default: $DEADZONE_REGISTRY or ./libraries_sources.yaml)")
    add_artifacts_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from deadzone_build.pipeline.explain import explain_slot  # numpy: only when asked (every command's start-up pays for imports)

    slot = find_slot(load_registry(settings.registry_path(args.registry)), args.slug)
    result = explain_slot(slot, settings.artifacts_dir(args.artifacts))
    if args.json:
        print(json.dumps(result.as_dict(), indent=1))
    else:
        print(f"{slot.label}: {'current' if result.current else 'NOT current'} ({result.key})")
        for reason in result.reasons:
            print(f"  {reason}")
    return 0
