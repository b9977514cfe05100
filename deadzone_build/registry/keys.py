"""Content keys: one string per slot that changes when, and only when, its artifact would.

    key = "deadzone-<slug>-" + blake3(canonical JSON of key_inputs(slot, pin))

The key is usable verbatim as an `actions/cache` key. `key_inputs` is stored in every
artifact's meta so `explain` can say which input changed.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Callable

import blake3

from deadzone_build.embed.pin import canonical_json, pin_dict, pin_id, pin_id_of
from deadzone_build.registry.load import Slot
from deadzone_build.sources.godoc import pins as godoc_pins

# Bump whenever fetch/clean/chunk/artifact output changes for the same inputs.
# tests/test_pipeline_golden.py fails when the output changes and this did not.
PIPELINE_VERSION = "2"  # 2: meta.json counts carry "truncated"


def key_inputs(slot: Slot, pin: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything that determines a slot's artifact bytes, as a JSON-able mapping."""
    inputs: dict[str, Any] = {
        "slot": {
            "lib_id": slot.lib_id,
            "version": slot.version,
            "kind": slot.kind,
            "ref": slot.ref,
            "urls": list(slot.urls),
            "description": slot.description,
        },
        "embedder": pin if pin is not None else pin_dict(),
        "pipeline_version": PIPELINE_VERSION,
    }
    if slot.lock:  # what the sources resolved to (registry/lock.py): an upstream change changes the key
        inputs["lock"] = json.loads(slot.lock)
    extra = source_key_inputs(slot)
    if extra:  # only kinds whose output depends on more than the entry (parser pins, an LLM route)
        inputs["source"] = extra
    return inputs


def source_key_inputs(slot: Slot) -> dict[str, Any]:
    """Per-kind key inputs beyond the registry entry (empty for github-md/github-rst, so their keys
    never change when another kind gains one). Must stay cheap: no heavy imports, no I/O."""
    extra = _SOURCE_KEY_INPUTS.get(slot.kind)
    return extra(slot) if extra else {}


def _agent_key_inputs(slot: Slot) -> dict[str, Any]:
    # extractor pins + route (deterministic, or endpoint model + prompt version) from the environment:
    # switching model rebuilds exactly the scrape-via-agent slots. Imported here, not at the top, so
    # keying other kinds never imports the sources package.
    from deadzone_build.sources.agent.route import slot_key_inputs

    return slot_key_inputs(slot)


# kind -> function(slot) -> dict of the inputs that shape that kind's documents
_SOURCE_KEY_INPUTS: dict[str, Callable[[Slot], dict[str, Any]]] = {
    "godoc": lambda slot: godoc_pins.key_inputs(),  # tree-sitter(-go) pins + the godoc format
    "scrape-via-agent": _agent_key_inputs,
}


def key_from_inputs(slug: str, inputs: dict[str, Any]) -> str:
    digest = blake3.blake3(canonical_json(inputs).encode()).hexdigest()
    return f"deadzone-{slug}-{digest}"


def slot_key(slot: Slot, pin: dict[str, Any] | None = None) -> str:
    """The content key of `slot` under `pin` (default: the current embedder pin)."""
    return keyed(slot, pin).key


@dataclass(frozen=True)
class SlotKey:
    """A slot's key with what it was computed from, computed once per slot (`keyed`) and carried
    from the doit task through scrape to the artifact's meta.json."""

    key: str
    inputs: dict[str, Any]  # key_inputs(slot, pin)
    pin_id: str  # the id of inputs["embedder"]


def keyed(slot: Slot, pin: dict[str, Any] | None = None) -> SlotKey:
    """`slot`'s SlotKey under `pin` (default: the current embedder pin; computed once per slot)."""
    if pin is None:
        extra = source_key_inputs(slot)
        return _current_keyed(slot, canonical_json(extra) if extra else "")
    inputs = key_inputs(slot, pin)
    return SlotKey(key_from_inputs(slot.slug, inputs), inputs, pin_id_of(pin))


@functools.lru_cache(maxsize=None)
def _current_keyed(slot: Slot, source_inputs: str) -> SlotKey:
    # A run asks for each slot's key several times (doit's scrape and consolidate checks, plan,
    # the manifest). Under the current pin it depends on the (frozen) Slot and on its kind's extra
    # inputs, which may follow the environment (scrape-via-agent's endpoint): both are the cache key.
    # Callers share the returned SlotKey: its `inputs` must be read, never modified.
    inputs = key_inputs(slot, None)
    return SlotKey(key_from_inputs(slot.slug, inputs), inputs, pin_id())


def changed_inputs(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted names of the inputs that differ between two `key_inputs` mappings."""
    changes: list[str] = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            changes.extend(f"{name}.{sub}" for sub in changed_inputs(a, b))
        else:
            changes.append(name)
    return changes


def registry_digest(slots: list[Slot], pin: dict[str, Any] | None = None) -> str:
    """blake3 over every slot key in registry order: names the exact registry a db was built from."""
    keys = [slot_key(s, pin) for s in slots]
    return blake3.blake3(canonical_json(keys).encode()).hexdigest()


def lock_digest(slots: list[Slot]) -> str:
    """blake3 over the lock entries (content half) of `slots` by slug: what a db's sources resolved to."""
    return blake3.blake3(canonical_json(sorted([s.slug, s.lock] for s in slots)).encode()).hexdigest()
