"""Which route builds a `scrape-via-agent` slot, and the key inputs that route implies.

    deterministic   no endpoint configured: the extracted markdown is the document
    endpoint        $DEADZONE_AGENT_ENDPOINT set: each section of the extracted markdown goes
                    through that OpenAI-compatible chat endpoint (model + prompt version)

The route, the extractor's pins and (for the endpoint route) the model and prompt version are
part of the slot's key, so switching model rebuilds exactly the `scrape-via-agent` slots and
nothing else. This module is imported while computing keys (`list`, doit's task list), so it
uses the standard library only: no parser, no HTTP client.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

ENDPOINT_ENV = "DEADZONE_AGENT_ENDPOINT"
MODEL_ENV = "DEADZONE_AGENT_ENDPOINT_MODEL"
API_KEY_ENV = "DEADZONE_AGENT_ENDPOINT_API_KEY"
TIMEOUT_ENV = "DEADZONE_AGENT_TIMEOUT"

# The extraction libraries shape the markdown byte for byte, so they are pinned exactly in
# pyproject.toml and named here; extract.py refuses to run under other versions (a key must
# never meet other bytes). EXTRACT_RULES_VERSION: bump when extract.py's own rules change.
EXTRACTOR_PINS = {"html-to-markdown": "3.21.2", "selectolax": "1.0.2"}
EXTRACT_RULES_VERSION = "1"
# Bump when the system prompt or the request shape in endpoint.py changes
# (tests/test_agent_endpoint.py holds the digest of the prompt this version names).
PROMPT_VERSION = "1"

DETERMINISTIC = "deterministic"
ENDPOINT = "endpoint"


@dataclass(frozen=True)
class Route:
    """How a slot's pages become markdown. `api_key` is never part of a key, a report or a repr."""

    name: str  # DETERMINISTIC | ENDPOINT
    endpoint: str | None = None
    model: str | None = None
    api_key: str | None = None

    def __repr__(self) -> str:
        return (f"Route(name={self.name!r}, endpoint={self.endpoint!r}, model={self.model!r}, "
                f"api_key={'set' if self.api_key else 'unset'})")

    def key_inputs(self) -> dict[str, Any]:
        inputs: dict[str, Any] = {"extractor": dict(EXTRACTOR_PINS), "extract_rules": EXTRACT_RULES_VERSION,
                                  "route": self.name}
        if self.name == ENDPOINT:
            # The endpoint URL is not an input: the same model behind another host gives the same
            # answers (and the answer cache is shared between machines on that basis).
            inputs.update(model=self.model, prompt_version=PROMPT_VERSION)
        return inputs


class RouteConfigError(ValueError):
    """$DEADZONE_AGENT_ENDPOINT is set without a model (raised as a ScrapeError by the source)."""


def route_from_env(environ: os._Environ[str] | dict[str, str] | None = None) -> Route:
    """The route the environment selects. An endpoint without a model is an error, not a guess."""
    env = os.environ if environ is None else environ
    endpoint = env.get(ENDPOINT_ENV, "").strip()
    if not endpoint:
        return Route(DETERMINISTIC)
    model = env.get(MODEL_ENV, "").strip()
    if not model:
        raise RouteConfigError(f"{ENDPOINT_ENV} is set ({endpoint}) but {MODEL_ENV} is not: set the model "
                               f"name the endpoint serves, or unset {ENDPOINT_ENV} to build deterministically.")
    return Route(ENDPOINT, endpoint=endpoint.rstrip("/"), model=model,
                 api_key=env.get(API_KEY_ENV, "").strip() or None)


def slot_key_inputs(slot: Any) -> dict[str, Any]:
    """`registry/keys.py`'s per-kind hook. A misconfigured endpoint still gives a key (the model
    field says what is missing); the scrape itself then fails with the full message."""
    try:
        return route_from_env().key_inputs()
    except RouteConfigError:
        return {**Route(ENDPOINT).key_inputs(), "model": None}
