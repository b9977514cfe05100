"""Benchmark: how the build's fixed costs grow with the registry (200 / 2,000 / 20,000 slots).

    python bench/scale.py [--sizes 200,2000,20000] [--rounds 3] [--work DIR] [--cache DIR]

For each size it writes a registry of N slots cut from deadzone's real registry (its 247 entries
repeated under new lib_ids: real kinds, versions, refs and URL lists), a real artifact for every
slot (the real `write_artifact`, one tiny chunk each, so 20,000 are written in seconds) and the db
consolidated from them, then times in fresh processes (median of `--rounds`):

    doit list --all      the baseline: loading dodo.py and the registry, no up-to-date check
    no-op doit           every scrape:<slug> and consolidate up to date (checked: nothing ran)
    list --json          deadzone-build list --json
    plan --json          deadzone-build plan --json --base-db deadzone.db (every slot reused)
    edited entry         one entry's description edited, then `doit`: checked that exactly one
                         scrape: task ran; compared with no-op + that slot's scrape + one consolidate
    scrape one slot      deadzone-build scrape --lib <edited> --force (the term of that sum)
    consolidate          deadzone-build consolidate of every artifact (one of them changed)

Each figure is printed with its ratio to `doit list --all` of the same size and its growth factor
from the previous size. The docs of the edited slot come from a local HTTP server (every path
answers a small markdown page); the model is the real one (`--cache` holds cache/embedder/<pin>/,
default $DEADZONE_CACHE or ./cache; it is linked, never written). Last (skip with --no-scrape,
or run alone with --scrape-only) it scrapes 200 small slots (github kinds, <= 3 URLs) in one
process, with a new HTTP client per slot (before issue 19) and with the process's shared client,
alternating, and prints the ratio of the medians.

The work dir defaults to /dev/shm (tmpfs: fsync is free there, so generating 20,000 artifacts
measures the writer, not the disk); pass --work to use a disk.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deadzone_build.embed.pin import pin_dict, pin_id  # noqa: E402
from deadzone_build.pipeline.artifact import DIMENSION, write_artifact  # noqa: E402
from deadzone_build.registry.keys import key_inputs, slot_key  # noqa: E402
from deadzone_build.registry.load import load_registry, parse_registry  # noqa: E402

REAL_REGISTRY = REPO / "tests" / "fixtures" / "deadzone-libraries_sources.yaml"
FIGURES = ("doit list --all", "no-op doit", "list --json", "plan --json", "edited entry", "scrape one slot",
           "consolidate")


# ── inputs ───────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Entry:
    """One registry entry as deadzone wrote it (YAML text, comments included) and its slots."""

    text: str
    slots: int
    kind: str
    lib_id: str


def real_entries() -> list[Entry]:
    """deadzone's registry cut into its entries, text kept as is (no YAML round trip changes a scalar)."""
    text = REAL_REGISTRY.read_text(encoding="utf-8")
    body = text[text.index("\nlibraries:\n") + len("\nlibraries:\n"):]
    blocks = re.split(r"(?m)^(?=  - lib_id: )", body)
    entries = []
    for block in blocks:
        if not block.lstrip().startswith("- lib_id:"):
            continue
        slots = parse_registry("libraries:\n" + block, REAL_REGISTRY)
        entries.append(Entry(block, len(slots), slots[0].kind, slots[0].lib_id))
    return entries


def renamed(entry: Entry, copy: int) -> Entry:
    if not copy:
        return entry
    lib_id = f"{entry.lib_id}-x{copy}"
    return Entry(entry.text.replace(f"  - lib_id: {entry.lib_id}", f"  - lib_id: {lib_id}", 1), entry.slots,
                 entry.kind, lib_id)


def registry_entries(n_slots: int) -> list[Entry]:
    """deadzone's entries, repeated under new lib_ids, holding exactly `n_slots` slots (topped up
    with copies of a one-slot github-md entry). A prefix of a larger registry's slots, in order."""
    real = real_entries()
    single = next(e for e in real if e.slots == 1 and e.kind == "github-md")
    entries, total, copy = [], 0, 0
    while True:
        for entry in real:
            if total + entry.slots > n_slots:
                break
            entries.append(renamed(entry, copy))
            total += entry.slots
        else:
            copy += 1
            continue
        break
    filler = 0
    while total < n_slots:
        filler += 1
        entries.append(renamed(single, 100_000 + filler))
        total += 1
    return entries


def write_registry(path: Path, entries: list[Entry], edits: dict[str, str] | None = None) -> None:
    """The registry file; `edits` maps a lib_id to a new description for that entry."""
    parts = []
    for entry in entries:
        text = entry.text
        if edits and entry.lib_id in edits:
            text = re.sub(r"(?m)^    description: .*$", f"    description: {edits[entry.lib_id]}", text, count=1)
        parts.append(text if text.endswith("\n") else text + "\n")
    path.write_text("libraries:\n" + "".join(parts), encoding="utf-8")


def editable_entry(entries: list[Entry]) -> Entry:
    """The first one-slot github-md entry with a description: editing it changes exactly one key."""
    return next(e for e in entries if e.kind == "github-md" and e.slots == 1 and "\n    description: " in e.text)


def write_tiny_artifacts(artifacts: Path, registry: Path) -> float:
    """A real artifact (one chunk, unit vectors) for every slot of `registry`; seconds taken."""
    slots = load_registry(registry)
    pin, pid = pin_dict(), pin_id()
    start = time.perf_counter()

    def one(i: int) -> None:
        slot = slots[i]
        vector = np.zeros((1, DIMENSION), dtype=np.float32)
        vector[0, i % DIMENSION] = 1.0
        chunk = {"url": slot.urls[0] if slot.urls else "", "heading_path": [slot.lib_id],
                 "ordinal": 0, "text": f"{slot.lib_id} {slot.version}: {slot.description}", "tokens": 12}
        reports = [{"url": u, "status": "ok", "http_status": 200, "bytes": 64, "sha256": "0" * 64,
                    "chunks": int(j == 0), "reason": None} for j, u in enumerate(slot.urls)]
        write_artifact(artifacts, slot, key=slot_key(slot), key_inputs=key_inputs(slot, pin), pin_id=pid,
                       chunks=[chunk], vectors=vector, library_vector=vector[0], url_reports=reports,
                       counts={"urls": len(reports), "docs_ok": len(reports), "docs_dropped": 0})

    with ThreadPoolExecutor(max_workers=8) as pool:  # fsync and file creation release the GIL
        list(pool.map(one, range(len(slots))))
    return time.perf_counter() - start


def link_subset(source: Path, target: Path, slugs: list[str]) -> None:
    """Hard-link the artifacts of `slugs` (a prefix registry's slots) from `source` into `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for slug in slugs:
        (target / slug).mkdir(exist_ok=True)
        for f in (source / slug).iterdir():
            dest = target / slug / f.name
            if not dest.exists():
                os.link(f, dest)


# ── a docs server: every path is a small markdown page ───────────────────────


class _Docs(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        name = self.path.rsplit("/", 1)[-1]
        body = (f"# {name}\n\nThe {name} page of {self.path}.\n\n## Usage\n\nCall `run()` and read the "
                "result.\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/markdown; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


def start_docs_server() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Docs)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


# ── timing fresh processes ───────────────────────────────────────────────────


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout + proc.stderr


def median_of(rounds: int, cmd: list[str], env: dict[str, str], cwd: Path,
              check=lambda out: None) -> float:
    times = []
    for _ in range(rounds):
        seconds, out = run(cmd, env, cwd)
        check(out)
        times.append(seconds)
    return statistics.median(times)


def ran_tasks(out: str) -> list[str]:
    """Tasks doit executed (its reporter prints `.  name` for those, `-- name` for up-to-date ones)."""
    return [line.split(None, 1)[1] for line in out.splitlines() if line.startswith(". ") and len(line.split()) > 1]


def expect_ran(expected: list[str]):
    def check(out: str) -> None:
        ran = ran_tasks(out)
        if ran != expected:
            raise SystemExit(f"expected doit to run {expected}, it ran {ran[:5]}{'...' if len(ran) > 5 else ''}")
    return check


# ── one size ─────────────────────────────────────────────────────────────────


def measure_size(n: int, root: Path, master: Path, env0: dict[str, str], rounds: int) -> dict[str, float]:
    work = root / f"n{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    registry = work / "libraries_sources.yaml"
    mine = registry_entries(n)
    write_registry(registry, mine)
    slots = load_registry(registry)
    assert len(slots) == n, (len(slots), n)
    link_subset(master, work / "artifacts", [s.slug for s in slots])
    env = {**env0, "DEADZONE_REGISTRY": str(registry), "DEADZONE_ARTIFACTS": str(work / "artifacts"),
           "DEADZONE_DB": str(work / "deadzone.db")}
    doit = [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-d", str(work)]
    cli = [sys.executable, "-m", "deadzone_build"]
    t: dict[str, float] = {}

    run([*cli, "consolidate"], env, work)  # the db a no-op finds current
    t["doit list --all"] = median_of(rounds, [*doit, "list", "--all"], env, work)
    t["no-op doit"] = median_of(rounds, doit, env, work, expect_ran([]))
    t["list --json"] = median_of(rounds, [*cli, "list", "--json"], env, work)
    t["plan --json"] = median_of(rounds, [*cli, "plan", "--json", "--base-db", str(work / "deadzone.db")], env, work)

    edit = editable_entry(mine)
    edited_slot = next(s for s in slots if s.lib_id == edit.lib_id)
    edits = []
    for r in range(rounds):
        write_registry(registry, mine, {edit.lib_id: f"An edited description, round {r + 1}."})
        seconds, out = run(doit, env, work)
        ran = ran_tasks(out)
        if [x for x in ran if x.startswith("scrape:")] != [f"scrape:{edited_slot.slug}"] or "consolidate" not in ran:
            raise SystemExit(f"n={n}: after one edit doit ran {ran[:5]}, expected scrape:{edited_slot.slug} "
                             "and consolidate")
        edits.append(seconds)
    t["edited entry"] = statistics.median(edits)
    t["scrape one slot"] = median_of(rounds, [*cli, "scrape", "--lib", edit.lib_id, "--force"], env, work)

    t["consolidate"] = median_of(rounds, [*cli, "consolidate", "--db", str(work / "full" / "deadzone.db")], env, work)
    return t


# ── scrape of 200 tiny slots: one client per slot vs the shared one ──────────


SCRAPE_CHILD = r"""
import json, statistics, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from deadzone_build.pipeline.scrape import scrape_slot, shared_embedder
from deadzone_build.registry.load import load_registry
from deadzone_build.sources.fetch import FetchSettings, make_client
registry, artifacts, cache, rounds = Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
slots = [s for s in load_registry(registry) if s.kind in ("github-md", "github-rst") and len(s.urls) <= 3][:200]
settings = FetchSettings()
embedder = shared_embedder(cache)

def each_slot_its_client():  # what scrape_slot did before: a client (and SSL context) per slot
    for slot in slots:
        with make_client(settings) as client:
            scrape_slot(slot, artifacts_dir=artifacts, cache_dir=cache, client=client, fetch_settings=settings,
                        embedder=embedder, force=True)

def shared():
    for slot in slots:
        scrape_slot(slot, artifacts_dir=artifacts, cache_dir=cache, fetch_settings=settings, embedder=embedder,
                    force=True)

shared()  # warm: model loaded, vector cache filled, server threads up
times = {"per_slot": [], "shared": []}
for _ in range(rounds):
    for name, fn in (("per_slot", each_slot_its_client), ("shared", shared)):
        start = time.perf_counter(); fn(); times[name].append(time.perf_counter() - start)
print(json.dumps({"slots": len(slots), **{k: statistics.median(v) for k, v in times.items()}}))
"""


def bench_scrape(root: Path, env: dict[str, str], rounds: int) -> dict[str, float]:
    work = root / "scrape200"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    registry = work / "libraries_sources.yaml"
    write_registry(registry, registry_entries(3000))  # enough small (<= 3 URLs) github slots for 200
    proc = subprocess.run([sys.executable, "-c", SCRAPE_CHILD, str(REPO), str(registry), str(work / "artifacts"),
                           env["DEADZONE_CACHE"], str(rounds)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"scrape bench failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ── report ───────────────────────────────────────────────────────────────────


def report(sizes: list[int], results: dict[int, dict[str, float]]) -> None:
    head = f"{'figure':<20}" + "".join(f"{f'{n:,} slots':>28}" for n in sizes)
    print(head)
    print(f"{'':<20}" + "".join(f"{'s  (x list --all, growth)':>28}" for _ in sizes))
    for figure in FIGURES:
        cells = []
        for i, n in enumerate(sizes):
            value = results[n][figure]
            ratio = value / results[n]["doit list --all"]
            growth = f"{value / results[sizes[i - 1]][figure]:.1f}x" if i else "-"
            cells.append(f"{value:8.3f}  ({ratio:5.2f}x, {growth:>5})")
        print(f"{figure:<20}" + "".join(f"{c:>28}" for c in cells))


def acceptance(sizes: list[int], results: dict[int, dict[str, float]]) -> None:
    print("\nacceptance (issue 19):")
    for n in sizes:
        r = results[n]
        ratio = r["no-op doit"] / r["doit list --all"]
        print(f"  {n:>6,} slots: no-op doit = {ratio:.2f}x doit list --all (goal <= 1.5)")
        bound = r["no-op doit"] + r["scrape one slot"] + r["consolidate"]
        print(f"  {n:>6,} slots: edited entry {r['edited entry']:.2f} s vs no-op + scrape + consolidate "
              f"{bound:.2f} s (ratio {r['edited entry'] / bound:.2f}, goal <= 1; exactly one scrape: task ran)")
    for a, b in zip(sizes, sizes[1:]):
        growth = results[b]["no-op doit"] / results[a]["no-op doit"]
        print(f"  no-op doit growth {a:,} -> {b:,} slots: {growth:.1f}x for {b / a:.0f}x the slots "
              f"(goal <= {1.1 * b / a:.0f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,2000,20000", help="comma-separated slot counts")
    parser.add_argument("--rounds", type=int, default=3, help="fresh-process runs per figure (median)")
    parser.add_argument("--work", type=Path, help="work dir (default: a temp dir in /dev/shm, removed)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("DEADZONE_CACHE", REPO / "cache")),
                        help="a cache dir holding the built model (cache/embedder/<pin>/)")
    parser.add_argument("--no-scrape", action="store_true", help="skip the 200-slot client comparison")
    parser.add_argument("--scrape-only", action="store_true", help="only the 200-slot client comparison")
    args = parser.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    shm = Path("/dev/shm")
    root = args.work or Path(tempfile.mkdtemp(prefix="dz-scale-", dir=shm if shm.is_dir() else None))
    root.mkdir(parents=True, exist_ok=True)
    server, base_url = start_docs_server()
    try:
        cache = root / "cache"
        cache.mkdir(exist_ok=True)
        if not (cache / "embedder").exists():
            (cache / "embedder").symlink_to((args.cache / "embedder").resolve(), target_is_directory=True)
        master_registry = root / "master.yaml"
        write_registry(master_registry, registry_entries(max(sizes)))
        hosts = sorted({urlsplit(u).netloc for s in load_registry(master_registry) for u in s.urls})
        rewrite = ";".join(f"https://{host}/={base_url}{host}/" for host in hosts)  # every docs host
        env = {**os.environ, "PYTHONPATH": str(REPO), "DEADZONE_CACHE": str(cache), "DEADZONE_URL_REWRITE": rewrite}
        env.pop("GITHUB_TOKEN", None)
        env.pop("GH_TOKEN", None)
        master = root / "master-artifacts"
        if not args.scrape_only:
            seconds = write_tiny_artifacts(master, master_registry)
            print(f"wrote {max(sizes):,} tiny artifacts with the real writer in {seconds:.1f} s ({root})", flush=True)
        results = {}
        for n in ([] if args.scrape_only else sizes):
            results[n] = measure_size(n, root, master, env, args.rounds)
            print(f"measured {n:,} slots", flush=True)
        if results:
            print()
            report(sizes, results)
            acceptance(sizes, results)
        if not args.no_scrape:
            s = bench_scrape(root, env, args.rounds)
            print(f"  scrape of {s['slots']} tiny slots in one process: {s['per_slot']:.2f} s with a client per slot "
                  f"(before), {s['shared']:.2f} s with the shared client: {s['per_slot'] / s['shared']:.2f}x faster "
                  "(goal >= 2)")
    finally:
        server.shutdown()
        if not args.work:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
