"""`deadzone-build scrape`: what `doit scrape:<slug>` does, for the selected slots, without doit."""

from __future__ import annotations

import argparse
import sys

from deadzone_build import settings
from deadzone_build.errors import ArtifactError, ScrapeError, SelectionError
from deadzone_build.commands.options import add_artifacts_argument, add_registry_arguments, selected_slots

NAME = "scrape"
HELP = "Fetch, chunk and embed the selected library versions into artifacts/<slug>/ (skips current ones)."
EXAMPLE = "deadzone-build scrape --lib /spf13/cobra --version 1.10"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    add_artifacts_argument(parser)
    parser.add_argument("--force", action="store_true", help="rebuild even when the artifact is current")


def run(args: argparse.Namespace) -> int:
    from deadzone_build.progress import SlotProgress
    from deadzone_build.registry.lock import lock_path_for
    from deadzone_build.pipeline.scrape import scrape_slot  # heavy (httpx, onnxruntime): only when scraping

    if args.lib is None:
        raise SelectionError("scrape needs --lib (and --version for one version). Use `doit` to build everything.")
    artifacts = settings.artifacts_dir(args.artifacts)
    cache = settings.cache_dir()
    slots = selected_slots(args)
    failed = []
    for slot in slots:
        progress = SlotProgress(slot.label)
        try:
            outcome = scrape_slot(slot, artifacts_dir=artifacts, cache_dir=cache, progress=progress, force=args.force,
                                  lock_path=lock_path_for(settings.registry_path(args.registry)))
        except (ScrapeError, ArtifactError) as exc:  # this slot only: the other versions still get built
            failed.append(slot.label)
            message = str(exc) if str(exc).startswith(slot.label) else f"{slot.label}: {exc}"
            print(f"failed     {message}", file=sys.stderr)
            continue
        finally:
            progress.close()
        print(outcome.line())
        for report in outcome.dropped:
            print(f"  dropped {report['url']}: {report.get('reason')}", file=sys.stderr)
    if failed:
        raise ScrapeError(f"{len(failed)} of {len(slots)} slots failed ({', '.join(failed)}); the others were "
                          "built. Fix or remove the failing entries (reasons above) and run again.")
    return 0
