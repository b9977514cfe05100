"""`deadzone-build list` and the doit task list, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEADZONE_REGISTRY_FIXTURE, FIXTURES, REPO
from deadzone_build.cli import main
from deadzone_build.registry.keys import slot_key
from deadzone_build.registry.load import load_registry


def run_list(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["list", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_has_every_slot_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_list(capsys, "--registry", str(DEADZONE_REGISTRY_FIXTURE), "--json")
    rows = json.loads(out)
    slots = load_registry(DEADZONE_REGISTRY_FIXTURE)
    assert code == 0
    assert [(r["lib_id"], r["version"], r["slug"], r["kind"], r["key"]) for r in rows] == [
        (s.lib_id, s.version, s.slug, s.kind, slot_key(s)) for s in slots]
    assert any(r["version"] == "" for r in rows)


def test_list_filters_and_table(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEADZONE_REGISTRY", str(REPO / "libraries_sources.yaml"))
    code, out, _ = run_list(capsys, "--lib", "/spf13/cobra", "--version", "1.10")
    assert code == 0
    assert "/spf13/cobra" in out and "1.10" in out and "1 slot" in out and "1.9 " not in out


@pytest.mark.parametrize(("args", "message"), [
    (["--version", "1.10"], "--version needs --lib"),
    (["--lib", "/nope/nope"], "no library `/nope/nope`"),
    (["--lib", "/spf13/cobra", "--version", "9"], "has no version `9`"),
])
def test_list_bad_filters_fail_clearly(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = run_list(capsys, "--registry", str(REPO / "libraries_sources.yaml"), *args)
    assert code == 1 and out == "" and message in err


def test_list_bad_registry_prints_error_and_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_list(capsys, "--registry", str(FIXTURES / "registries" / "unknown_kind.yaml"))
    assert code == 1 and out == ""
    assert "unknown_kind.yaml:3" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_doit_lists_one_scrape_subtask_per_slot(tmp_path: Path) -> None:
    env = dict(os.environ, DEADZONE_REGISTRY=str(DEADZONE_REGISTRY_FIXTURE))
    proc = subprocess.run([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "list", "--all"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    names = {line.split()[0] for line in proc.stdout.splitlines() if line.startswith("scrape:")}
    assert names == {f"scrape:{s.slug}" for s in load_registry(DEADZONE_REGISTRY_FIXTURE)}


def test_doit_registry_var_and_bad_registry_message(tmp_path: Path) -> None:
    bad = FIXTURES / "registries" / "duplicate_slot.yaml"
    proc = subprocess.run([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "list", f"registry={bad}"],
                          cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"{bad}:7" in proc.stderr and "duplicate slot" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "artifacts").exists()


def test_list_loads_no_heavy_module() -> None:
    """Every CI job and every doit run starts with a registry read: it must not pay for numpy, httpx,
    ghapi or onnxruntime (those cost ~0.4 s of imports)."""
    code = ("import sys, contextlib, io\n"
            "from deadzone_build.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['list', '--json', '--registry', {str(DEADZONE_REGISTRY_FIXTURE)!r}]) == 0\n"
            "print(sorted(m for m in ('numpy', 'httpx', 'ghapi', 'onnxruntime', 'tokenizers') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
