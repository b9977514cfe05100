"""Why is a slot (not) up to date? Compares its artifact's stored key inputs with the current ones."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deadzone_build.pipeline.artifact import META_FILE, verify_artifact
from deadzone_build.errors import ArtifactError
from deadzone_build.registry.keys import changed_inputs, key_inputs, slot_key
from deadzone_build.registry.load import Slot


@dataclass
class Explanation:
    slot: Slot
    key: str
    path: Path
    current: bool
    reasons: list[str] = field(default_factory=list)
    route: str | None = None  # kinds with a route (scrape-via-agent): the one that built the artifact

    def as_dict(self) -> dict[str, Any]:
        out = {"lib_id": self.slot.lib_id, "version": self.slot.version, "slug": self.slot.slug,
               "key": self.key, "path": str(self.path), "current": self.current, "reasons": self.reasons}
        if self.route is not None:
            out["route"] = self.route
        return out


def explain_slot(slot: Slot, artifacts_dir: Path) -> Explanation:
    """Whether `artifacts_dir/<slug>` is current for `slot` and, if not, what differs."""
    key = slot_key(slot)
    path = Path(artifacts_dir) / slot.slug
    result = Explanation(slot, key, path, current=False)
    try:
        meta = verify_artifact(path)
    except ArtifactError as exc:
        result.reasons.append(str(exc))
        old = _stored_inputs(path)
        if old is not None:
            result.reasons.extend(_describe(old, key_inputs(slot)))
        return result
    result.route = route_of(meta.get("key_inputs"))
    built_by = [f"built by {result.route}."] if result.route is not None else []
    if meta["key"] == key:
        result.current = True
        result.reasons.append(f"{path} holds a verified artifact with key {key}.")
        result.reasons.extend(built_by)
        return result
    result.reasons.append(f"{path} holds key {meta['key']}, the registry now gives {key}.")
    result.reasons.extend(built_by)
    result.reasons.extend(_describe(meta.get("key_inputs", {}), key_inputs(slot)))
    return result


def route_of(inputs: dict[str, Any] | None) -> str | None:
    """Which route built an artifact, from its stored key inputs (None for kinds without routes)."""
    source = (inputs or {}).get("source") if isinstance(inputs, dict) else None
    if not isinstance(source, dict) or "route" not in source:
        return None
    if source["route"] == "endpoint":
        return f"route endpoint, model {source.get('model')}, prompt version {source.get('prompt_version')}"
    pins = ", ".join(f"{name} {version}" for name, version in sorted((source.get("extractor") or {}).items()))
    return f"route {source['route']} (extraction with {pins}, rules {source.get('extract_rules')})"


def _stored_inputs(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / META_FILE).read_text(encoding="utf-8")).get("key_inputs")
    except (OSError, ValueError, AttributeError):
        return None


def _describe(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines = []
    for name in changed_inputs(old, new):
        before, after = _lookup(old, name), _lookup(new, name)
        if isinstance(before, (str, int, float)) and isinstance(after, (str, int, float)):
            lines.append(f"changed {name}: {before!r} -> {after!r}")
        elif isinstance(before, list) and isinstance(after, list):
            added = [x for x in after if x not in before]
            removed = [x for x in before if x not in after]
            detail = "; ".join(filter(None, [f"added {added}" if added else "",
                                              f"removed {removed}" if removed else ""])) or "reordered"
            lines.append(f"changed {name}: {detail}")
        else:
            lines.append(f"changed {name}")
    return lines


def _lookup(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node
