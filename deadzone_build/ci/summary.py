"""What a build did, per slot: the table the workflow writes to `$GITHUB_STEP_SUMMARY`.

A slot's status is one of

    scraped   a job fetched, chunked and embedded it this run
    cached    a job restored it from `actions/cache` (no scrape)
    reused    `deadzone-build pull` rebuilt it from the released db (no job)
    failed    it has no current artifact: its job failed, or it is missing from the db

Where a slot came from is known from the plan (`plan.json`), corrected by the status files the
matrix jobs leave (`status/<slug>.json`, `record_slot_status`): the plan predicts, the job knows.
Failure comes from the manifest `consolidate` writes beside the db.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from deadzone_build.atomic import write_atomic
from deadzone_build.errors import DeadzoneError

STATUSES = ("scraped", "cached", "reused", "failed")
PLAN_SOURCE_STATUS = {"release": "reused", "cache": "cached", "scrape": "scraped"}
MAX_URLS_SHOWN = 5  # per cell; the rest is counted, the full list is in manifest.json
MAX_REASON = 200  # characters of a failure reason shown in a cell; manifest.json has it whole


def manifest_slots(manifest: Mapping[str, Any] | list[Any]) -> list[dict[str, Any]]:
    """The per-slot records of a manifest (`{"slots": [...]}` or a bare list)."""
    slots = manifest.get("slots") if isinstance(manifest, Mapping) else manifest
    if not isinstance(slots, list) or not all(isinstance(s, dict) and s.get("slug") for s in slots):
        raise DeadzoneError("the manifest has no `slots` list of records with a `slug`. Pass the "
                            "manifest.json written by `deadzone-build consolidate`.")
    return slots


def slot_status(record: Mapping[str, Any], sources: Mapping[str, str]) -> str:
    """scraped / cached / reused / failed for one manifest record."""
    if record.get("status", "ok") != "ok":  # consolidate: ok, or missing / stale / corrupt
        return "failed"
    source = sources.get(record["slug"], "scraped")
    return source if source in STATUSES else "scraped"


def dropped_urls(record: Mapping[str, Any]) -> list[str]:
    """The URLs a slot dropped, with their HTTP status when there was one."""
    urls = []
    for drop in record.get("dropped") or []:
        if isinstance(drop, dict):
            status = drop.get("http_status")
            urls.append(f"{drop.get('url', '')} ({status})" if status else str(drop.get("url", "")))
        else:
            urls.append(str(drop))
    return urls


def summary_rows(manifest: Mapping[str, Any] | list[Any], *, sources: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per manifest slot, failed ones first (then manifest order)."""
    rows = []
    for record in manifest_slots(manifest):
        counts = record.get("counts") or {}
        rows.append({
            "lib_id": record.get("lib_id", ""), "version": record.get("version", ""),
            "slug": record["slug"], "status": slot_status(record, sources),
            "chunks": int(counts["chunks"]) if "chunks" in counts else None,
            "dropped": dropped_urls(record),
            "reason": str(record.get("reason") or ""),
        })
    return sorted(rows, key=lambda row: row["status"] != "failed")


def status_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for row in rows:
        counts[row["status"]] += 1
    return counts


def summary_markdown(manifest: Mapping[str, Any] | list[Any], *, sources: Mapping[str, str]) -> str:
    """A markdown table: lib, version, status, chunks, dropped URLs; failures on top."""
    rows = summary_rows(manifest, sources=sources)
    counts = status_counts(rows)
    tally = " · ".join(f"{counts[s]} {s}" for s in STATUSES)
    note = manifest.get("note") if isinstance(manifest, Mapping) else None
    lines = [
        "### deadzone.db build",
        "",
        f"**{len(rows)} slot{'s' if len(rows) != 1 else ''}**: {tally}",
        "",
        *([f"> {note}", ""] if note else []),
        "| lib | version | status | chunks | dropped URLs |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for row in rows:
        status = row["status"]
        if status == "failed":
            reason = row["reason"] if len(row["reason"]) <= MAX_REASON else row["reason"][:MAX_REASON] + "…"
            status = f"**failed**: {reason}" if reason else "**failed**"
        chunks = "—" if row["chunks"] is None else str(row["chunks"])
        cells = [row["lib_id"], row["version"] or "—", status, chunks, _urls_cell(row["dropped"])]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def summary_json(manifest: Mapping[str, Any] | list[Any], *, sources: Mapping[str, str]) -> dict[str, Any]:
    rows = summary_rows(manifest, sources=sources)
    return {"counts": status_counts(rows), "slots": rows}


def _urls_cell(urls: list[str]) -> str:
    if not urls:
        return "—"
    shown = "<br>".join(urls[:MAX_URLS_SHOWN])
    more = f"<br>… and {len(urls) - MAX_URLS_SHOWN} more" if len(urls) > MAX_URLS_SHOWN else ""
    return f"{len(urls)}: {shown}{more}"


def _cell(text: str) -> str:
    """Keep a cell on one line and its pipes from ending it."""
    return " ".join(str(text).split()).replace("|", "\\|")


# ── sources: the plan, then the matrix jobs' status files ───────────────────


def sources_from_plan(plan: Mapping[str, Any]) -> dict[str, str]:
    """slug → reused / cached / scraped, as `deadzone-build plan --json` predicted."""
    slots = plan.get("slots")
    if not isinstance(slots, list):
        raise DeadzoneError("the plan has no `slots` list. Pass the plan.json written by "
                            "`deadzone-build plan --out plan.json`.")
    return {s["slug"]: PLAN_SOURCE_STATUS.get(s.get("source", ""), "scraped") for s in slots}


def manifest_from_plan(plan: Mapping[str, Any], statuses: Mapping[str, str]) -> dict[str, Any]:
    """A stand-in manifest when consolidate wrote none (it writes nothing when it fails): every
    planned slot, failed when its job says so, without counts."""
    slots = []
    for row in plan.get("slots") or []:
        failed = statuses.get(row["slug"]) == "failed"
        slots.append({**{k: row.get(k, "") for k in ("lib_id", "version", "slug", "key")},
                      "status": "failed" if failed else "ok",
                      "reason": "its scrape job failed" if failed else ""})
    return {"slots": slots, "note": "consolidate wrote no manifest.json (see its log for why): this table "
                                    "comes from the plan and the matrix jobs' status files."}


def job_status(outcome: str, cache_hit: str) -> str:
    """A matrix job's status from its scrape step's outcome and the cache restore's `cache-hit`.

    `cache-hit` is "" on a miss (not "false"), so only the exact text "true" means cached."""
    if outcome != "success":
        return "failed"
    return "cached" if cache_hit == "true" else "scraped"


def record_slot_status(status_dir: str | Path, slug: str, *, outcome: str, cache_hit: str) -> str:
    """Write `status_dir/<slug>.json` for the consolidate job; returns the status."""
    if not slug or "/" in slug or "\\" in slug or slug.startswith(".") or len(f"{slug}.json".encode()) > 255:
        shown = slug if len(slug) <= 60 else f"{slug[:60]}… ({len(slug)} characters)"
        raise DeadzoneError(f"`{shown}` is not a slot slug (no `/`, no leading `.`, at most 250 bytes). "
                            "Pass the matrix entry's `slug`.")
    status = job_status(outcome, cache_hit)
    directory = Path(status_dir)
    directory.mkdir(parents=True, exist_ok=True)
    record = {"slug": slug, "status": status, "outcome": outcome, "cache_hit": cache_hit == "true"}
    write_atomic(directory / f"{slug}.json", json.dumps(record, sort_keys=True) + "\n")
    return status


def read_slot_statuses(status_dir: str | Path) -> dict[str, str]:
    """slug → status from every `<slug>.json` the matrix jobs uploaded (none: empty)."""
    statuses = {}
    for path in sorted(Path(status_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            statuses[str(record["slug"])] = str(record["status"])
        except (OSError, ValueError, KeyError, TypeError):
            raise DeadzoneError(f"{path}: not a slot status file. Delete it; the matrix job that "
                                "wrote it should be rerun.") from None
    return statuses
