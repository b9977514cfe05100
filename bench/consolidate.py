"""Benchmark: consolidate 250 synthetic libraries / 100,000 chunks, then search the db.

    /tmp/venv/bin/python bench/consolidate.py [--libraries 250] [--chunks 100000] [--queries 300]
                                              [--search-baseline REV]   (e.g. main: today's search code)

Artifacts are generated with the real `write_artifact` (random unit vectors, ~150-word texts drawn
from a Zipf vocabulary so FTS sees realistic posting lists). Each measured build runs in its own
child process so its peak RSS is its own. Baselines, measured in the same run on the same data:

  consolidate  a naive writer: one INSERT per row into chunks and into the FTS table, a commit per
               library, default journal and sync, no VACUUM (what a first version usually does)
  search       FTS-only BM25 (one SQLite query, no embedding side): the floor a hybrid search adds to

Goals (issue 6): consolidate < 10 s and < 1 GB peak RSS; search p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _rss import own_peak_rss_mb  # noqa: E402
from deadzone_build.pipeline.artifact import DIMENSION, read_artifact, write_artifact  # noqa: E402
from deadzone_build.registry.keys import key_inputs, registry_digest, slot_key  # noqa: E402
from deadzone_build.embed.pin import pin_id  # noqa: E402
from deadzone_build.registry.load import Slot, slug_for  # noqa: E402

VOCABULARY = 20_000
WORDS_PER_CHUNK = 150


def make_slots(n: int) -> list[Slot]:
    slots = []
    for i in range(n):
        lib_id = f"/org{i % 37}/lib{i}"
        version = f"{i % 3}.0" if i % 5 == 0 else ""
        slots.append(Slot(lib_id=lib_id, version=version, kind="github-md", ref="",
                          urls=tuple(f"https://raw.githubusercontent.com{lib_id}/main/doc{j}.md" for j in range(8)),
                          description=f"Synthetic library number {i} for the consolidate benchmark.",
                          slug=slug_for(lib_id, version)))
    return slots


def words(rng: np.random.Generator, n: int) -> list[str]:
    ids = np.minimum(rng.zipf(1.15, size=n), VOCABULARY)
    return [f"w{x}" if x % 7 else f"api_call_{x}" for x in ids]


def generate(artifacts: Path, slots: list[Slot], total_chunks: int) -> None:
    per_lib = total_chunks // len(slots)
    for i, slot in enumerate(slots):
        generate_one(artifacts, slot, per_lib, seed=i)


def generate_one(artifacts: Path, slot: Slot, per_lib: int, seed: int = 10_000) -> None:
    """One library's artifact: `per_lib` chunks of Zipf words and random unit vectors."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((per_lib, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    library_vector = vectors.mean(axis=0)
    library_vector /= np.linalg.norm(library_vector)
    chunks = [{"url": slot.urls[j % len(slot.urls)], "heading_path": [f"Lib {seed}", f"Section {j // 4}"],
               "ordinal": j, "text": " ".join(words(rng, WORDS_PER_CHUNK)), "tokens": 200} for j in range(per_lib)]
    reports = [{"url": u, "status": "ok", "http_status": 200, "bytes": 1000, "sha256": "0" * 64,
                "chunks": per_lib // len(slot.urls), "reason": ""} for u in slot.urls]
    write_artifact(artifacts, slot, key=slot_key(slot), key_inputs=key_inputs(slot), pin_id=pin_id(),
                   chunks=chunks, vectors=vectors, library_vector=library_vector, url_reports=reports,
                   counts={"urls": 8, "docs_ok": 8, "docs_dropped": 0})


# ── the two builds, each run in a child process (see main) ───────────────────


def build_ours(artifacts: Path, db: Path, slots: list[Slot]) -> None:
    from deadzone_build.db.consolidate import consolidate

    consolidate(slots=slots, artifacts_dir=artifacts, db_path=db, registry_digest=registry_digest(slots))


def row_independent_floor(built: Path, scratch: Path) -> float:
    """Seconds of what any byte-identical consolidate must redo over every row, however the rows
    arrive: the one-pass FTS rebuild, the integrity check and the sha256 (why `--base` was removed)."""
    from deadzone_build.db import consolidate as C
    from deadzone_build.atomic import sha256_file
    from deadzone_build.db.schema import TABLES_DDL

    scratch.unlink(missing_ok=True)
    conn = sqlite3.connect(scratch, isolation_level=None)
    conn.execute(f"PRAGMA page_size = {C.S.PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute(f"PRAGMA cache_size = -{C.BUILD_CACHE_KB}")
    conn.executescript(TABLES_DDL)
    conn.execute("ATTACH DATABASE ? AS old", (str(built),))
    conn.execute("BEGIN")
    conn.execute("INSERT INTO libraries SELECT * FROM old.libraries")  # rows copied for free: not timed
    conn.execute("INSERT INTO chunks SELECT * FROM old.chunks")
    conn.execute("COMMIT")
    conn.execute("DETACH DATABASE old")
    start = time.perf_counter()
    conn.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('hashsize', ?)", (C.FTS_BUILD_HASH_BYTES,))
    conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
    conn.execute("PRAGMA integrity_check").fetchall()
    conn.close()
    sha256_file(scratch)
    return time.perf_counter() - start


def build_naive(artifacts: Path, db: Path, slots: list[Slot]) -> None:
    from deadzone_build.db.schema import TABLES_DDL

    conn = sqlite3.connect(db)
    conn.executescript(TABLES_DDL)
    next_chunk = 1
    for lib, slot in enumerate(slots, start=1):
        art = read_artifact(artifacts / slot.slug, expected_key=slot_key(slot))
        conn.execute("INSERT INTO libraries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     (lib, slot.lib_id, slot.version, slot.slug, art.key, slot.kind, slot.ref, slot.description,
                      len(art.chunks), 0, 0, 0, next_chunk, art.library_vector.tobytes(), json.dumps(art.meta)))
        for i, c in enumerate(art.chunks):
            conn.execute("INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)",
                         (next_chunk, lib, slot.lib_id, slot.version, c["url"], json.dumps(c["heading_path"]), i,
                          c["text"], c["tokens"], art.vectors[i].tobytes()))
            conn.execute("INSERT INTO chunks_fts(rowid, text, heading_path) VALUES (?,?,?)",
                         (next_chunk, c["text"], json.dumps(c["heading_path"])))
            next_chunk += 1
        conn.commit()
    conn.close()


def child(which: str, artifacts: str, db: str, n_libraries: int) -> None:
    slots = make_slots(n_libraries)
    start = time.perf_counter()
    if which == "ours":
        build_ours(Path(artifacts), Path(db), slots)
    elif which == "floor":  # `db` is the built db; the timed part is measured inside
        seconds = row_independent_floor(Path(db), Path(db).with_name("floor.db"))
        print(json.dumps({"seconds": seconds, "peak_rss_mb": own_peak_rss_mb()}))
        return
    else:
        build_naive(Path(artifacts), Path(db), slots)
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": own_peak_rss_mb()}))


def run_child(which: str, artifacts: Path, db: Path, n_libraries: int) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one build in a fresh process."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", which, str(artifacts), str(db), str(n_libraries)],
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise SystemExit(f"{which} build failed")
    result = json.loads(out)
    return result["seconds"], result["peak_rss_mb"]


# ── search ───────────────────────────────────────────────────────────────────


class RandomQueryEmbedder:
    """Stands in for the model: a fixed random unit vector per query text (we time search, not MiniLM)."""

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            v = np.random.default_rng(abs(hash(text)) % 2**32).standard_normal(DIMENSION).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows)


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1000, q[94] * 1000


def baseline_search_module(rev: str):
    """db/search.py as it was at git revision `rev`, loaded as its own module (timed side by side)."""
    import importlib.util

    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:deadzone_build/db/search.py"],
                            check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("baseline_search", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{rev}:deadzone_build/db/search.py", "exec"), module.__dict__)
    return module


def bench_search(db: Path, slots: list[Slot], n_queries: int, baseline_rev: str | None = None) -> dict[str, float]:
    from deadzone_build.db.search import fts_query, open_index, search

    rng = np.random.default_rng(99)
    queries = [" ".join(words(rng, int(rng.integers(1, 5)))) for _ in range(n_queries)]
    libs = [slots[int(rng.integers(len(slots)))] if i % 3 == 0 else None for i in range(n_queries)]
    embedder = RandomQueryEmbedder()
    start = time.perf_counter()
    open_index(db)
    load = time.perf_counter() - start
    baseline = baseline_search_module(baseline_rev) if baseline_rev else None
    hybrid, fts_only, before = [], [], []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    for query, slot in zip(queries, libs):
        lib = None if slot is None else slot.lib_id
        t = time.perf_counter()
        search(db, query, embedder=embedder, lib=lib, version=None if slot is None else slot.version, limit=10)
        hybrid.append(time.perf_counter() - t)
        if baseline is not None:
            t = time.perf_counter()
            baseline.search(db, query, embedder=embedder, lib=lib, version=None if slot is None else slot.version,
                            limit=10)
            before.append(time.perf_counter() - t)
        t = time.perf_counter()
        sql = "SELECT c.id, c.text FROM chunks_fts f JOIN chunks c ON c.id = f.rowid WHERE chunks_fts MATCH ?"
        args: tuple = (fts_query(query),)
        if lib is not None:
            sql += " AND c.lib_id = ?"
            args += (lib,)
        conn.execute(sql + " ORDER BY rank LIMIT 10", args).fetchall()
        fts_only.append(time.perf_counter() - t)
    conn.close()
    (h50, h95), (f50, f95) = percentiles(hybrid), percentiles(fts_only)
    result = {"load_s": load, "p50": h50, "p95": h95, "fts_p50": f50, "fts_p95": f95}
    if before:
        result["before_p50"], result["before_p95"] = percentiles(before)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libraries", type=int, default=250)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--search-baseline", metavar="REV",
                        help="also time db/search.py of git revision REV on the same queries (p95 ratio)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temp dir, removed)")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dz-bench-"))
    try:
        slots = make_slots(args.libraries)
        artifacts = work / "artifacts"
        t = time.perf_counter()
        if not all((artifacts / s.slug / "meta.json").exists() for s in slots):
            generate(artifacts, slots, args.chunks)
        print(f"generated {args.libraries} artifacts / {args.chunks} chunks in {time.perf_counter() - t:.1f} s")
        ours_s, ours_mb = run_child("ours", artifacts, work / "ours" / "deadzone.db", args.libraries)
        (work / "naive").mkdir(exist_ok=True)
        (work / "naive" / "deadzone.db").unlink(missing_ok=True)
        naive_s, naive_mb = run_child("naive", artifacts, work / "naive" / "deadzone.db", args.libraries)
        db = work / "ours" / "deadzone.db"
        size = db.stat().st_size / 2**20
        print(f"consolidate: {ours_s:.2f} s, peak RSS {ours_mb:.0f} MB, db {size:.0f} MB  "
              f"(naive row-by-row: {naive_s:.2f} s, {naive_mb:.0f} MB; time ratio {ours_s / naive_s:.2f}x)  "
              f"goal < 10 s, < 1024 MB")
        floor_s, _ = run_child("floor", artifacts, db, args.libraries)
        print(f"of which FTS rebuild + integrity check + sha256 over every row: {floor_s:.2f} s "
              f"({floor_s / ours_s:.0%}): an incremental consolidate with identical bytes is at best "
              f"{floor_s / ours_s:.2f}x a full one (goal for --base was 0.7x, so --base was removed)")
        s = bench_search(db, slots, args.queries, args.search_baseline)
        print(f"search ({args.queries} queries, 1/3 filtered by library, limit 10): p50 {s['p50']:.1f} ms, "
              f"p95 {s['p95']:.1f} ms  (FTS-only baseline p50 {s['fts_p50']:.1f} ms, p95 {s['fts_p95']:.1f} ms; "
              f"p95 ratio {s['p95'] / s['fts_p95']:.2f}x)  goal p95 < 100 ms; first query loads vectors in "
              f"{s['load_s']:.2f} s")
        if "before_p95" in s:
            print(f"search vs {args.search_baseline} (same queries, same process): p50 {s['p50']:.1f} vs "
                  f"{s['before_p50']:.1f} ms, p95 {s['p95']:.1f} vs {s['before_p95']:.1f} ms "
                  f"(p95 ratio {s['p95'] / s['before_p95']:.2f}x)  goal <= 1.20x")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
