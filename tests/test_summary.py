"""The build summary: scraped / cached / reused / failed per slot, as markdown and JSON."""

from __future__ import annotations

import json

import pytest

from deadzone_build.cli import main
from deadzone_build.errors import DeadzoneError
from deadzone_build.ci.summary import (job_status, read_slot_statuses, record_slot_status, summary_json,
                                    summary_markdown)


def manifest() -> dict:
    """The shape consolidate writes (manifest.json), four slots."""
    def slot(lib_id, version, slug, status="ok", chunks=None, dropped=(), reason=""):
        return {"lib_id": lib_id, "version": version, "slug": slug, "key": f"deadzone-{slug}-00",
                "status": status, "reason": reason,
                "counts": {"chunks": chunks, "docs_ok": 2, "docs_dropped": len(dropped)} if chunks is not None else {},
                "dropped": [{"url": u, "http_status": 404, "reason": "HTTP 404"} for u in dropped]}
    return {"format": 1, "db": "deadzone.db", "slots": [
        slot("/spf13/cobra", "1.9", "spf13_cobra_1.9", chunks=120),
        slot("/spf13/cobra", "1.10", "spf13_cobra_1.10", chunks=131,
             dropped=["https://raw.githubusercontent.com/spf13/cobra/v1.10.2/site/a|b.md"]),
        slot("/go-chi/chi", "", "go-chi_chi", chunks=40),
        slot("/jdx/mise", "2026.4", "jdx_mise_2026.4", status="missing",
             reason="no artifact at artifacts/jdx_mise_2026.4"),
    ]}


SOURCES = {"spf13_cobra_1.9": "scraped", "spf13_cobra_1.10": "cached", "go-chi_chi": "reused",
           "jdx_mise_2026.4": "scraped"}


def table_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")][2:]  # past header and rule
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_markdown_with_all_four_statuses():
    text = summary_markdown(manifest(), sources=SOURCES)
    assert "**4 slots**: 1 scraped · 1 cached · 1 reused · 1 failed" in text
    assert "| lib | version | status | chunks | dropped URLs |" in text
    rows = table_rows(text)
    assert [r[:4] for r in rows] == [
        ["/jdx/mise", "2026.4", "**failed**: no artifact at artifacts/jdx_mise_2026.4", "—"],  # failures first
        ["/spf13/cobra", "1.9", "scraped", "120"],
        ["/spf13/cobra", "1.10", "cached", "131"],
        ["/go-chi/chi", "—", "reused", "40"],
    ]
    assert rows[2][4] == r"1: https://raw.githubusercontent.com/spf13/cobra/v1.10.2/site/a\|b.md (404)"
    assert rows[1][4] == "—"


def test_json_has_the_same_rows():
    data = summary_json(manifest(), sources=SOURCES)
    assert data["counts"] == {"scraped": 1, "cached": 1, "reused": 1, "failed": 1}
    assert [row["status"] for row in data["slots"]] == ["failed", "scraped", "cached", "reused"]


def test_a_job_that_failed_wins_over_the_manifest():
    data = summary_json(manifest(), sources={**SOURCES, "go-chi_chi": "failed"})
    assert data["counts"]["failed"] == 2


def test_long_dropped_lists_are_cut_and_counted():
    m = manifest()
    m["slots"][0]["dropped"] = [f"https://example.org/{i}.md" for i in range(8)]
    cell = table_rows(summary_markdown(m, sources=SOURCES))[1][4]
    assert cell.startswith("8: https://example.org/0.md<br>") and cell.endswith("… and 3 more")


def test_a_manifest_without_slots_is_refused():
    with pytest.raises(DeadzoneError, match="no `slots` list"):
        summary_markdown({"format": 1}, sources={})


@pytest.mark.parametrize("outcome, cache_hit, status", [
    ("success", "", "scraped"), ("success", "true", "cached"), ("success", "false", "scraped"),
    ("failure", "true", "failed"), ("failure", "", "failed"), ("skipped", "", "failed"),
])
def test_job_status(outcome, cache_hit, status):
    assert job_status(outcome, cache_hit) == status


def test_status_files_round_trip(tmp_path):
    assert record_slot_status(tmp_path / "status", "go-chi_chi", outcome="success", cache_hit="true") == "cached"
    record_slot_status(tmp_path / "status", "jdx_mise_2026.4", outcome="failure", cache_hit="")
    assert read_slot_statuses(tmp_path / "status") == {"go-chi_chi": "cached", "jdx_mise_2026.4": "failed"}
    assert sorted(p.name for p in (tmp_path / "status").iterdir()) == ["go-chi_chi.json", "jdx_mise_2026.4.json"]
    assert read_slot_statuses(tmp_path / "nowhere") == {}


@pytest.mark.parametrize("slug", ["", "../x", "a/b", ".hidden"])
def test_a_bad_slug_writes_no_status(tmp_path, slug):
    with pytest.raises(DeadzoneError, match="not a slot slug"):
        record_slot_status(tmp_path, slug, outcome="success", cache_hit="")
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_status_file_is_named(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(DeadzoneError, match=r"x\.json: not a slot status file"):
        read_slot_statuses(tmp_path)


# ── the command, as the workflow runs it ─────────────────────────────────────


def test_cli_summary_from_manifest_plan_and_status_files(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps(manifest()))
    plan = {"slots": [{"slug": "spf13_cobra_1.9", "source": "scrape"}, {"slug": "spf13_cobra_1.10", "source": "scrape"},
                      {"slug": "go-chi_chi", "source": "release"}, {"slug": "jdx_mise_2026.4", "source": "scrape"}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    status = tmp_path / "status"
    assert main(["summary", "--record", "spf13_cobra_1.10", "--outcome", "success", "--cache-hit", "true",
                 "--status-dir", str(status)]) == 0
    assert capsys.readouterr().out == "spf13_cobra_1.10: cached\n"
    args = ["summary", "--manifest", str(tmp_path / "manifest.json"), "--plan", str(tmp_path / "plan.json"),
            "--status-dir", str(status)]
    assert main(args) == 0
    assert "1 scraped · 1 cached · 1 reused · 1 failed" in capsys.readouterr().out
    assert main([*args, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"scraped": 1, "cached": 1, "reused": 1, "failed": 1}


def test_cli_summary_without_a_manifest_falls_back_to_the_plan(tmp_path, capsys):
    (tmp_path / "plan.json").write_text(json.dumps({"slots": [
        {"lib_id": "/a/b", "version": "", "slug": "a_b", "key": "k1", "source": "release"},
        {"lib_id": "/c/d", "version": "2", "slug": "c_d_2", "key": "k2", "source": "scrape"}]}))
    record_slot_status(tmp_path / "status", "c_d_2", outcome="failure", cache_hit="")
    assert main(["summary", "--manifest", str(tmp_path / "manifest.json"), "--plan", str(tmp_path / "plan.json"),
                 "--status-dir", str(tmp_path / "status")]) == 0
    out = capsys.readouterr().out
    assert "> consolidate wrote no manifest.json" in out and "0 scraped · 0 cached · 1 reused · 1 failed" in out
    assert table_rows(out)[0][:4] == ["/c/d", "2", "**failed**: its scrape job failed", "—"]


def test_cli_summary_errors(tmp_path, capsys):
    assert main(["summary"]) == 1
    assert "needs --manifest" in capsys.readouterr().err
    assert main(["summary", "--manifest", str(tmp_path / "manifest.json")]) == 1
    assert "manifest not found; run `doit consolidate` first" in capsys.readouterr().err
    assert main(["summary", "--record", "x", "--outcome", "success"]) == 1
    assert "--record needs --status-dir" in capsys.readouterr().err
