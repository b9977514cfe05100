"""Benchmark: `doit` over the 186 godoc slots of deadzone's registry, from local fakes.

The fake Contents API (tests/fx_godoc.py) serves Debian's Go 1.19 sources (/usr/share/go-1.19/src,
package golang-1.19-src) for any ref, so the 159 packages that exist in Go 1.19 build and the 27
newer ones must each fail with "not found". Prints wall time, slots built/failed, chunks and the
db size; exits non-zero when a failure is anything but "not found" or the counts differ.

    python bench/godoc.py [--src /usr/share/go-1.19/src] [--cache DIR] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from fx_godoc import serve_godoc  # noqa: E402

from deadzone_build.registry.load import load_registry  # noqa: E402

REGISTRY = ROOT / "tests" / "fixtures" / "deadzone-libraries_sources.yaml"


def godoc_registry(target: Path) -> list:
    slots = [s for s in load_registry(REGISTRY) if s.kind == "godoc"]
    entries = [{"lib_id": s.lib_id, "description": s.description, "kind": "godoc", "ref": s.ref,
                "urls": [u.replace(s.ref, "{ref}") for u in s.urls]} for s in slots]
    target.write_text(yaml.safe_dump({"libraries": entries}, sort_keys=False))
    return slots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", type=Path, default=Path("/usr/share/go-1.19/src"))
    parser.add_argument("--cache", type=Path, default=ROOT / "cache")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if not args.src.is_dir():
        print(f"{args.src} is missing: apt-get install golang-1.19-src", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-godoc-") as tmp, serve_godoc(args.src) as server:
        work = Path(tmp)
        slots = godoc_registry(work / "libraries_sources.yaml")
        present = [s for s in slots if (args.src / s.urls[0].split("/contents/src/")[1].split("?")[0]).is_dir()]
        env = {**os.environ, **server.env(), "PYTHONPATH": str(ROOT), "DEADZONE_ARTIFACTS": str(work / "artifacts"),
               "DEADZONE_CACHE": str(args.cache.resolve()), "DEADZONE_DB": str(work / "deadzone.db"),
               "DEADZONE_REGISTRY": str(work / "libraries_sources.yaml")}
        doit = [sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"), "-d", str(ROOT)]
        started = time.perf_counter()
        scrape = subprocess.run([*doit, "--continue", "-n", str(args.jobs), "-P", "thread", "scrape"],
                                env=env, capture_output=True, text=True)
        scraped = time.perf_counter() - started
        consolidate = subprocess.run([*doit, "--single", f"max_missing={len(slots) - len(present)}", "consolidate"],
                                     env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        output = scrape.stdout + scrape.stderr
        failures = [line for line in output.splitlines() if re.search(r"/golang/go/\S+: .*(no artifact|not found|Error)", line)]
        not_found = [line for line in failures if "not found" in line]
        built = len(list((work / "artifacts").glob("*/meta.json")))
        db = work / "deadzone.db"
        chunks = 0
        if db.exists():
            with sqlite3.connect(db) as conn:
                chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        print(f"godoc slots: {len(slots)} ({len(present)} in Go 1.19)")
        print(f"built: {built}   failed: {len(failures)} ({len(not_found)} 'not found')")
        print(f"wall time: {wall:.1f} s (scrape {scraped:.1f} s, consolidate {wall - scraped:.1f} s, -n {args.jobs})")
        print(f"chunks: {chunks}   db size: {db.stat().st_size / 1e6 if db.exists() else 0:.1f} MB")
        print(f"consolidate exit: {consolidate.returncode}")
        ok = built == len(present) and len(not_found) == len(slots) - len(present) == len(failures) \
            and consolidate.returncode == 0 and "Traceback" not in output
        if not ok:
            print(output[-4000:], consolidate.stdout[-2000:], consolidate.stderr[-2000:], file=sys.stderr)
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
