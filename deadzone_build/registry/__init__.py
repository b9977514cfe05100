"""Registry stage: `libraries_sources.yaml` → slots (`load`) → content keys (`keys`)."""

from deadzone_build.registry.keys import PIPELINE_VERSION, key_inputs, registry_digest, slot_key
from deadzone_build.registry.load import KINDS, Slot, find_slot, load_registry, parse_registry, select_slots, slug_for

__all__ = ["KINDS", "PIPELINE_VERSION", "Slot", "find_slot", "key_inputs", "load_registry", "parse_registry",
           "registry_digest", "select_slots", "slot_key", "slug_for"]
