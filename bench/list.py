"""Benchmark: `deadzone-build list` on deadzone's real registry vs a plain `yaml` load of the same file.

Every CI job starts by loading the registry and computing keys, so this is the no-op overhead.
Prints seconds for both and their ratio (list / plain load); both are measured in this run.

    python bench/list.py [REGISTRY] [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from deadzone_build.cli import main

DEFAULT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "deadzone-libraries_sources.yaml"


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("registry", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    text = args.registry.read_text()

    def plain_pyyaml() -> None:
        yaml.safe_load(text)  # what most tools do: pure-Python loader

    def plain_c() -> None:
        yaml.load(text, Loader=yaml.CSafeLoader)

    def listing() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            main(["list", "--registry", str(args.registry), "--json"])

    listing()  # warm imports
    t_plain = best_of(plain_pyyaml, args.repeat)
    t_c = best_of(plain_c, args.repeat)
    t_list = best_of(listing, args.repeat)
    print(f"registry: {args.registry} ({len(text):,} bytes)")
    print(f"yaml.safe_load (pure Python)   {t_plain * 1000:8.1f} ms   (baseline)")
    print(f"yaml.load CSafeLoader          {t_c * 1000:8.1f} ms   ratio {t_c / t_plain:.2f}")
    print(f"deadzone-build list --json     {t_list * 1000:8.1f} ms   ratio {t_list / t_plain:.2f} "
          "(load + validate + resolve + keys + JSON)")

    # What a CI step or a doit run really pays: a fresh interpreter, imports included.
    def cold(code: str) -> None:
        subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)

    cold_plain = best_of(lambda: cold(f"import yaml; yaml.safe_load(open({str(args.registry)!r}).read())"),
                         args.repeat)
    cold_list = best_of(lambda: cold("from deadzone_build.cli import main; "
                                     f"main(['list', '--registry', {str(args.registry)!r}, '--json'])"), args.repeat)
    print(f"cold process: python -c yaml.safe_load {cold_plain * 1000:8.1f} ms   (baseline)")
    print(f"cold process: deadzone-build list --json {cold_list * 1000:6.1f} ms   ratio {cold_list / cold_plain:.2f}")


if __name__ == "__main__":
    main_bench()
