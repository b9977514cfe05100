"""Content keys change when, and only when, a slot's artifact would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import DEADZONE_REGISTRY_FIXTURE, REPO
from deadzone_build.registry.keys import PIPELINE_VERSION, changed_inputs, key_inputs, registry_digest, slot_key
from deadzone_build.embed.pin import pin_dict
from deadzone_build.registry.load import load_registry, parse_registry

REGISTRY_TEXT = (REPO / "libraries_sources.yaml").read_text()


def keys_of(text: str) -> dict[tuple[str, str], str]:
    return {(s.lib_id, s.version): slot_key(s) for s in parse_registry(text)}


def changed(before: dict, after: dict) -> set[tuple[str, str]]:
    assert before.keys() == after.keys()
    return {slot for slot in before if before[slot] != after[slot]}


def test_keys_are_distinct_and_usable_as_cache_keys() -> None:
    slots = load_registry(DEADZONE_REGISTRY_FIXTURE)
    keys = [slot_key(s) for s in slots]
    assert len(set(keys)) == len(slots) == 253
    for slot, key in zip(slots, keys):
        assert key.startswith(f"deadzone-{slot.slug}-")
        assert len(key.rsplit("-", 1)[1]) == 64
        assert "," not in key and len(key) < 512  # actions/cache limits


def test_editing_a_description_changes_only_that_entrys_slots() -> None:
    before = keys_of(REGISTRY_TEXT)
    after = keys_of(REGISTRY_TEXT.replace(
        "Command runner for project-specific tasks", "A command runner for project tasks"))
    assert changed(before, after) == {("/casey/just", "1.49"), ("/casey/just", "1.50")}


def test_editing_one_url_changes_only_that_entrys_slots() -> None:
    before = keys_of(REGISTRY_TEXT)
    after = keys_of(REGISTRY_TEXT.replace("{ref}/docs/Guides/Testing.md", "{ref}/docs/Guides/Testing2.md"))
    assert changed(before, after) == {("/fastify/fastify", "")}


def test_editing_a_version_ref_changes_only_that_slot() -> None:
    before = keys_of(REGISTRY_TEXT)
    after = keys_of(REGISTRY_TEXT.replace('"1.10": { ref: v1.10.2 }', '"1.10": { ref: v1.10.3 }'))
    assert changed(before, after) == {("/spf13/cobra", "1.10")}


def test_reordering_entries_changes_no_key() -> None:
    head, body = REGISTRY_TEXT.split("libraries:\n", 1)
    entries = body.split("\n\n")
    reordered = head + "libraries:\n" + "\n\n".join(reversed([e.rstrip("\n") for e in entries])) + "\n"
    assert [s.lib_id for s in parse_registry(reordered)] != [s.lib_id for s in parse_registry(REGISTRY_TEXT)]
    assert keys_of(reordered) == keys_of(REGISTRY_TEXT)


def test_pin_and_pipeline_version_change_every_key() -> None:
    slots = parse_registry(REGISTRY_TEXT)
    other_pin = dict(pin_dict(), max_seq_length=128)
    assert all(slot_key(s) != slot_key(s, other_pin) for s in slots)
    inputs = key_inputs(slots[0])
    assert inputs["pipeline_version"] == PIPELINE_VERSION
    assert changed_inputs(inputs, key_inputs(slots[0], other_pin)) == ["embedder.max_seq_length"]


def test_changed_inputs_names_the_field() -> None:
    a, b = parse_registry(REGISTRY_TEXT)[:2]  # go-sdk 1.4 and 1.5
    assert changed_inputs(key_inputs(a), key_inputs(b)) == ["slot.ref", "slot.urls", "slot.version"]


def test_same_registry_same_keys_in_another_process(tmp_path: Path) -> None:
    code = ("import json,sys; from deadzone_build.registry import load_registry;"
            "from deadzone_build.registry.keys import slot_key;"
            "print(json.dumps([slot_key(s) for s in load_registry(sys.argv[1])]))")
    env = {"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin", "LANG": "C"}
    out = subprocess.run([sys.executable, "-c", code, str(DEADZONE_REGISTRY_FIXTURE)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [slot_key(s) for s in load_registry(DEADZONE_REGISTRY_FIXTURE)]


def test_registry_digest_follows_keys_and_order() -> None:
    slots = parse_registry(REGISTRY_TEXT)
    assert registry_digest(slots) == registry_digest(list(slots))
    assert registry_digest(slots) != registry_digest(slots[1:])
