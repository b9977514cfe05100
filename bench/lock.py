"""`deadzone-build lock` over deadzone's whole registry (253 slots) against a local upstream.

Three runs in one process, each a real `deadzone-build lock` (in process, through the CLI):
  1. cold: no lock file: every URL read whole, every (repo, ref) resolved once
  2. warm: nothing changed upstream: every URL asked with its validators (all 304, no body)
  3. one document changed upstream: one 200, the rest 304, exactly one slot's key changes
Prints requests, bodies, seconds and keys changed per run, and each run's time as a ratio of the
cold run (the baseline measured in the same run).

    python bench/lock.py
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from deadzone_build.cli import main  # noqa: E402
from deadzone_build.registry.keys import slot_key  # noqa: E402
from deadzone_build.registry.load import load_registry  # noqa: E402
from fx_upstream import serve_upstream  # noqa: E402

REGISTRY = ROOT / "tests" / "fixtures" / "deadzone-libraries_sources.yaml"


def _run(registry: Path) -> tuple[float, dict]:
    out = io.StringIO()
    started = time.perf_counter()
    with redirect_stdout(out):
        code = main(["lock", "--registry", str(registry), "--json"])
    seconds = time.perf_counter() - started
    assert code == 0, out.getvalue()
    return seconds, json.loads(out.getvalue())


def main_bench() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-lock-"))
    registry = work / "libraries_sources.yaml"
    shutil.copy(REGISTRY, registry)
    slots = load_registry(registry)
    urls = {u for s in slots for u in s.urls}
    with serve_upstream() as up:
        up.any_path = True
        local = f"http://127.0.0.1:{up.port}/raw/"
        os.environ["DEADZONE_URL_REWRITE"] = ";".join([
            f"https://raw.githubusercontent.com/={local}", f"https://api.github.com/={local}api.github.com/",
            f"https://docs.turso.tech/={local}docs.turso.tech/"])
        os.environ["GITHUB_API_URL"] = up.api_url
        print(f"registry: {len(slots)} slots, {len(urls)} distinct URLs")
        rows = []
        for label in ("cold (no lock)", "warm (unchanged)", "one document changed"):
            if label == "one document changed":
                up.files["spf13/cobra/v1.10.2/README.md"] = b"# Cobra\n\nChanged upstream.\n"
            before = {s.slug: slot_key(s) for s in load_registry(registry)}
            up.reset_counts()
            seconds, report = _run(registry)
            after = {s.slug: slot_key(s) for s in load_registry(registry)}
            changed = sum(1 for slug in after if after[slug] != before[slug])
            rows.append((label, seconds, len(up.requests), up.bodies_sent, up.not_modified,
                         report["requests"].get("commit", 0), changed))
    cold = rows[0][1]
    print(f"{'run':<24}{'seconds':>9}{'ratio':>7}{'requests':>10}{'bodies':>8}{'304s':>7}{'commits':>9}{'keys changed':>14}")
    for label, seconds, requests, bodies, not_modified, commits, changed in rows:
        print(f"{label:<24}{seconds:>9.2f}{seconds / cold:>7.2f}{requests:>10}{bodies:>8}{not_modified:>7}"
              f"{commits:>9}{changed:>14}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main_bench()
