"""Benchmark: `deadzone-build serve` through the MCP SDK's client over stdio, on the synthetic db of
bench/consolidate.py (250 libraries / 100,000 chunks, generated with its code).

    python bench/serve.py [--libraries 250] [--chunks 100000] [--queries 200] [--keep DIR] [--cache DIR]

Measured in this run, same db, same queries, same real model (all-MiniLM-L6-v2):

  start-up  spawn -> `initialize` answered; spawn -> first search_docs answered (db resolved, vectors
            and model loaded: the warm-up); the server's RSS once warm, and its peak (VmHWM)
  latency   search_docs round trips through the client (1/3 filtered by lib_id), p50/p95
  baseline  the same queries in process, interleaved with the MCP calls: `SearchIndex.search`
            (embedding included; what the CLI does), and the tool function alone
            (`serve.tools.search_docs`: + version collapse and budget); the ratios say what the tool
            layer and MCP (JSON-RPC over a pipe) add. Start-up is set against a fresh python that
            only imports the SDK.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402

from deadzone_build import settings  # noqa: E402


def load_consolidate_bench():
    spec = importlib.util.spec_from_file_location("bench_consolidate", REPO / "bench" / "consolidate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1000, q[94] * 1000


def server_pid() -> int:
    """The pid of our `deadzone_build serve` child (stdio_client does not expose it)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
            if ppid == os.getpid() and b"serve" in cmdline and b"deadzone_build" in cmdline:
                return int(entry.name)
    raise SystemExit("could not find the server process")


def memory_mb(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def workload(bc, slots, n: int) -> list[dict]:
    rng = np.random.default_rng(7)
    calls = []
    for i in range(n):
        query = " ".join(bc.words(rng, int(rng.integers(1, 5))))
        args = {"query": query}
        if i % 3 == 0:
            slot = slots[int(rng.integers(len(slots)))]
            args["lib_id"] = slot.lib_id
            if slot.version:
                args["version"] = slot.version
        calls.append(args)
    return calls


def sdk_import_floor() -> float:
    """Seconds for a fresh Python to import the SDK's server and nothing else: the floor of start-up."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mcp.server.mcpserver"], check=True)
    return time.perf_counter() - start


async def measure(db: Path, cache: Path, data: Path, calls: list[dict]) -> dict[str, float]:
    """Start the server, then per query (interleaved, so shared-machine load hits all three alike):
    SearchIndex.search in process, the tool function in process, search_docs through MCP."""
    from deadzone_build.db.search import SearchIndex
    from deadzone_build.embed.embedder import Embedder
    from deadzone_build.serve import tools

    index, model = SearchIndex(db), Embedder(cache)
    tools.search_docs(index, model, "warm up")
    params = StdioServerParameters(command=sys.executable, args=["-m", "deadzone_build", "serve", "--db", str(db)],
                                   env={"PYTHONPATH": str(REPO), "DEADZONE_CACHE": str(cache),
                                        "DEADZONE_DATA_DIR": str(data)})
    start = time.perf_counter()
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            initialized = time.perf_counter() - start
            first = await session.call_tool("search_docs", {"query": "warm up"})
            ready = time.perf_counter() - start
            assert not first.is_error, first.content[0].text
            pid = server_pid()
            rss, _ = memory_mb(pid)
            direct, tool, served = [], [], []
            for args in calls:
                t = time.perf_counter()
                index.search(args["query"], embedder=model, lib=args.get("lib_id"), version=args.get("version"),
                             limit=10)
                direct.append(time.perf_counter() - t)
                t = time.perf_counter()
                tools.search_docs(index, model, **args)
                tool.append(time.perf_counter() - t)
                t = time.perf_counter()
                result = await session.call_tool("search_docs", args)
                served.append(time.perf_counter() - t)
                assert not result.is_error and result.structured_content["snippets"], result.content[0].text
            _, peak = memory_mb(pid)
    index.close()
    (p50, p95), (d50, d95), (t50, t95) = percentiles(served), percentiles(direct), percentiles(tool)
    return {"init_s": initialized, "ready_s": ready, "rss_mb": rss, "peak_mb": peak, "p50": p50, "p95": p95,
            "direct_p50": d50, "direct_p95": d95, "tool_p50": t50, "tool_p95": t95}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libraries", type=int, default=250)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (a second run reuses the db)")
    parser.add_argument("--cache", metavar="DIR", help="model cache (default: $DEADZONE_CACHE or ./cache)")
    args = parser.parse_args()
    bc = load_consolidate_bench()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dz-bench-serve-"))
    cache = settings.cache_dir(args.cache).resolve()
    try:
        from deadzone_build.embed.embedder import ensure_model

        ensure_model(cache)
        slots = bc.make_slots(args.libraries)
        db = work / "deadzone.db"
        if not db.exists():
            t = time.perf_counter()
            bc.generate(work / "artifacts", slots, args.chunks)
            bc.build_ours(work / "artifacts", db, slots)
            print(f"built the synthetic db ({args.libraries} libraries / {args.chunks} chunks) in "
                  f"{time.perf_counter() - t:.1f} s")
        calls = workload(bc, slots, args.queries)
        # the same query text is never repeated within a run (the server's query-vector cache stays cold)
        calls = list({c["query"] + str(c.get("lib_id")): c for c in calls}.values())
        floor = sdk_import_floor()
        m = anyio.run(measure, db, cache, work / "data", calls)
        print(f"server start-up: initialize answered after {m['init_s']:.2f} s (a bare `import mcp.server.mcpserver` "
              f"in a fresh python: {floor:.2f} s, ratio {m['init_s'] / floor:.2f}x); first search_docs (db vectors "
              f"+ model loaded) after {m['ready_s']:.2f} s; RSS {m['rss_mb']:.0f} MB warm, peak {m['peak_mb']:.0f} MB")
        print(f"search_docs over MCP stdio ({len(calls)} queries, 1/3 filtered by lib_id): p50 {m['p50']:.1f} ms, "
              f"p95 {m['p95']:.1f} ms")
        print(f"baseline in process, same queries and model, interleaved: SearchIndex.search p50 "
              f"{m['direct_p50']:.1f} ms, p95 {m['direct_p95']:.1f} ms; tools.search_docs p50 {m['tool_p50']:.1f} ms, "
              f"p95 {m['tool_p95']:.1f} ms")
        print(f"ratio MCP / SearchIndex.search: p50 {m['p50'] / m['direct_p50']:.2f}x, "
              f"p95 {m['p95'] / m['direct_p95']:.2f}x  (MCP / tool function: p50 {m['p50'] / m['tool_p50']:.2f}x)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
