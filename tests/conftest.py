"""Shared pytest fixtures. Each area keeps its fixtures in its own `fx_*.py` module,
imported here, so the suite has one place to look for what a test can ask for."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
DEADZONE_REGISTRY_FIXTURE = FIXTURES / "deadzone-libraries_sources.yaml"
MIRROR = FIXTURES / "docs-mirror"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's registry, token or rewrite settings."""
    for name in ("DEADZONE_REGISTRY", "DEADZONE_ARTIFACTS", "DEADZONE_CACHE", "DEADZONE_DB",
                 "DEADZONE_URL_REWRITE", "GITHUB_TOKEN", "GH_TOKEN", "GITHUB_REPOSITORY",
                 "GITHUB_API_URL", "SOURCE_DATE_EPOCH", "DEADZONE_GOPROXY", "DEADZONE_SUMDB",
                 "DEADZONE_AGENT_ENDPOINT", "DEADZONE_AGENT_ENDPOINT_MODEL", "DEADZONE_AGENT_ENDPOINT_API_KEY",
                 "DEADZONE_AGENT_TIMEOUT", "DEADZONE_DOC_DEADLINE", "DEADZONE_SLOT_DEADLINE",
                 "DEADZONE_ALLOW_PRIVATE_HOSTS"):
        monkeypatch.delenv(name, raising=False)


# Area fixtures (one import line per area):
from fx_artifacts import *  # noqa
from fx_docserver import *  # noqa
from fx_release import *  # noqa
from fx_fakegithub import *  # noqa
from fx_model import *  # noqa
from fx_pypi import *  # noqa
from fx_upstream import *  # noqa
from fx_godoc import *  # noqa
from fx_llm import *  # noqa
from fx_htmlsite import *  # noqa
