"""`deadzone-build pin`: the embedder pin (model files' blake3 and settings) and its id."""

from __future__ import annotations

import argparse
import json

from deadzone_build import settings

NAME = "pin"
HELP = "Print the embedder pin, which is half of every content key, and its id (no model is loaded)."
EXAMPLE = "deadzone-build pin --json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print one JSON object: pin_id, pin, model path")
    shown.add_argument("--id", action="store_true",
                       help="print only the pin id (CI keys the actions/cache of cache/embedder/ by it)")


def run(args: argparse.Namespace) -> int:
    from deadzone_build.embed.embedder import model_path
    from deadzone_build.embed.pin import pin_dict, pin_id

    if args.id:
        print(pin_id())
        return 0
    model = model_path(settings.cache_dir())
    if args.json:
        print(json.dumps({"pin_id": pin_id(), "pin": pin_dict(), "model": str(model)}, indent=1, sort_keys=True))
        return 0
    print(f"pin_id  {pin_id()}")
    print(f"model   {model} ({'built' if model.exists() else 'not built yet'})")
    print(json.dumps(pin_dict(), indent=1, sort_keys=True))
    return 0
