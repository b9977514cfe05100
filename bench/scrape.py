"""Benchmark: scrape the shipped registry from the local docs mirror, then rebuild after a one-section edit.

Prints, for the full scrape: chunks/s and the fraction of time spent in fetch / chunk / embed / write;
for the rebuild after editing one section of one document: how many chunks were re-embedded and its
time as a ratio of the full scrape of that slot (both measured in this run); and the peak RSS of a
separate process scraping the largest fixture library.

    python bench/scrape.py [--lib LIB_ID ...] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _rss import own_peak_rss_mb  # noqa: E402
from fx_docserver import serve_mirror  # noqa: E402

from deadzone_build.sources.fetch import FetchSettings, make_client  # noqa: E402
from deadzone_build.registry.load import load_registry, select_slots  # noqa: E402
from deadzone_build.pipeline.scrape import scrape_slot, shared_embedder  # noqa: E402

LARGEST = "/fastify/fastify"


def scrape_all(slots, server, artifacts: Path, cache: Path, force: bool = False):
    settings = FetchSettings()
    client = make_client(settings, rewrite=[("https://raw.githubusercontent.com/", server.base_url)], token="")
    embedder = shared_embedder(cache)
    outcomes = []
    try:
        for slot in slots:
            outcomes.append(scrape_slot(slot, artifacts_dir=artifacts, cache_dir=cache, client=client,
                                        fetch_settings=settings, embedder=embedder, force=force))
    finally:
        client.close()
    return outcomes


def peak_rss_of_one_library(cache: Path, server_rewrite: str, work: Path) -> float:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "from _rss import own_peak_rss_mb\n"
        "from deadzone_build.cli import main\n"
        f"rc = main(['scrape', '--registry', {str(ROOT / 'libraries_sources.yaml')!r}, '--lib', {LARGEST!r},"
        f" '--artifacts', {str(work / 'rss-artifacts')!r}, '--force'])\n"
        "print(own_peak_rss_mb())\n"
    )
    # the built model, but an empty vector cache: the child really embeds the library
    own_cache = work / "rss-cache"
    own_cache.mkdir(exist_ok=True)
    if not (own_cache / "embedder").exists():
        (own_cache / "embedder").symlink_to((cache / "embedder").resolve(), target_is_directory=True)
    env = {"DEADZONE_CACHE": str(own_cache), "DEADZONE_URL_REWRITE": server_rewrite, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", action="append", help="only these libraries (repeatable)")
    parser.add_argument("--cache", type=Path, help="model cache to reuse (default: a temp dir; the model is built)")
    args = parser.parse_args()
    slots = load_registry(ROOT / "libraries_sources.yaml")
    if args.lib:
        slots = [s for lib in args.lib for s in select_slots(slots, lib)]
    with tempfile.TemporaryDirectory() as tmp, serve_mirror() as server:
        work = Path(tmp)
        cache = args.cache or work / "cache"
        shared_embedder(cache)  # build/load the model outside the timings
        # the vector cache must start empty so the full scrape really embeds everything
        vector_cache = cache / "vectors"
        if vector_cache.exists():
            for f in vector_cache.iterdir():
                f.unlink()

        start = time.perf_counter()
        outcomes = scrape_all(slots, server, work / "artifacts", cache)
        wall = time.perf_counter() - start
        chunks = sum(o.chunks for o in outcomes)
        stages = {k: sum(o.seconds.get(k, 0.0) for o in outcomes) for k in ("fetch", "chunk", "embed", "write")}
        total = sum(stages.values())
        print(f"full scrape: {len(slots)} slots, {sum(o.docs_ok for o in outcomes)} docs, {chunks} chunks "
              f"in {wall:.1f} s = {chunks / wall:.1f} chunks/s")
        print("  time share: " + ", ".join(f"{k} {v / total:.1%}" for k, v in stages.items()))

        # one-section edit of the largest slot's first document, then a rebuild
        target = max(outcomes, key=lambda o: o.chunks)
        url = target.slot.urls[0]
        text = server.file_bytes(url).decode()
        cut = text.find("\n## ", len(text) // 3)
        cut = cut if cut > 0 else len(text) // 2
        server.faults.body(url, text[:cut] + "\n\nA sentence added by the benchmark's one-section edit.\n" + text[cut:])
        start = time.perf_counter()
        again = scrape_all([target.slot], server, work / "artifacts", cache, force=True)[0]
        rebuild = time.perf_counter() - start
        full = sum(target.seconds.values())
        print(f"rebuild of {target.slot.label} after a one-section edit: re-embedded {again.embedded} of "
              f"{again.chunks} chunks; {rebuild:.2f} s vs {full:.2f} s full = ratio {rebuild / full:.2f}")

        rss = peak_rss_of_one_library(cache, server.rewrite, work)
        print(f"peak RSS scraping {LARGEST} (largest fixture library) in its own process: {rss:.0f} MiB")
        print(json.dumps({"chunks_per_s": chunks / wall, "stage_share": {k: v / total for k, v in stages.items()},
                          "re_embedded": again.embedded, "rebuild_ratio": rebuild / full, "peak_rss_mib": rss}))
    print(f"bench process peak RSS: {own_peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
