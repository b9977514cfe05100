"""The optional extras: a feature whose packages are not installed says which extra to install."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from deadzone_build.errors import ScrapeError
from deadzone_build.sources.agent import extract

REPO = Path(__file__).resolve().parent.parent


def test_serve_without_the_mcp_sdk_names_the_extra(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['mcp'] = None; from deadzone_build.cli import main; "
            "sys.exit(main(['serve', '--db', 'missing.db']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1, proc.stderr
    assert "pip install 'deadzone-build[serve]'" in proc.stderr and "Traceback" not in proc.stderr


def test_html_kind_without_its_extractor_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(extract.metadata, "version", not_installed)
    with pytest.raises(ScrapeError, match=r"not installed; install the optional HTML extractor: "
                                          r"pip install 'deadzone-build\[html\]'"):
        extract.check_versions()
