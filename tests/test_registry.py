"""Registry loading, validation and resolution on real and broken registries."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conftest import DEADZONE_REGISTRY_FIXTURE, FIXTURES, REPO
from deadzone_build.errors import RegistryError, SelectionError
from deadzone_build.registry.load import find_slot, load_registry, parse_registry, select_slots, slug_for

BROKEN = FIXTURES / "registries"


def test_deadzone_real_registry_resolves_to_253_slots() -> None:
    slots = load_registry(DEADZONE_REGISTRY_FIXTURE)
    assert len(slots) == 253
    assert Counter(s.kind for s in slots) == {"godoc": 186, "github-md": 65, "github-rst": 2}
    assert sum(len(s.urls) for s in slots) == 1858
    assert len({s.slug for s in slots}) == 253
    assert all("{ref}" not in u for s in slots for u in s.urls)


def test_mcp_spec_versions_are_date_strings_substituted_into_urls() -> None:
    slots = select_slots(load_registry(DEADZONE_REGISTRY_FIXTURE), "/modelcontextprotocol/modelcontextprotocol")
    assert [s.version for s in slots] == ["2025-06-18", "2025-11-25"]
    for slot in slots:
        assert slot.ref == slot.version
        assert all(slot.version in url for url in slot.urls)
        assert slot.slug == f"modelcontextprotocol_modelcontextprotocol_{slot.version}"


def test_every_scalar_stays_text_and_versions_inherit() -> None:
    slots = load_registry(BROKEN / "strings.yaml")
    spec = [s for s in slots if s.lib_id == "/acme/spec"]
    assert [s.version for s in spec] == ["2025-06-18", "1.10", "1.2"]  # declaration order, not sorted
    by_version = {s.version: s for s in spec}
    assert by_version["2025-06-18"].ref == "2025-06-18"
    assert by_version["2025-06-18"].urls == (
        "https://raw.githubusercontent.com/acme/spec/2025-06-18/docs/2025-06-18/index.md",)
    assert by_version["1.10"].ref == "2024-01-01"  # null value inherits everything
    assert by_version["1.10"].description == ""  # whitespace-only normalises to ""
    assert by_version["1.2"].urls == ("https://raw.githubusercontent.com/acme/spec/v1.2.0/v12.md",)
    assert by_version["1.2"].description == "The 1.2 line."
    assert by_version["1.10"].slug == "acme_spec_1.10"
    plain = find_slot(slots, "acme_plain")
    assert (plain.version, plain.ref, plain.kind) == ("", "", "github-rst")


def test_slug() -> None:
    assert slug_for("/a/b/c", "") == "a_b_c"
    assert slug_for("/a/b", "1.2") == "a_b_1.2"


# (fixture file, line the message must name, entry it must name, words it must contain)
ERROR_CASES = [
    ("yaml_syntax.yaml", 5, None, "YAML syntax error"),
    ("missing_field.yaml", 2, "/acme/widgets", "missing field `kind`"),
    ("unknown_field.yaml", 4, "/acme/widgets", "Did you mean `description`?"),
    ("bad_lib_id_escape.yaml", 2, "/acme/../../etc", "`..`"),
    ("bad_lib_id_no_slash.yaml", 2, "acme/widgets", "must start with `/`"),
    ("bad_lib_id_trailing.yaml", 2, "/acme/widgets/", "must not end with `/`"),
    ("bad_lib_id_empty_segment.yaml", 2, "/acme//widgets", "empty"),
    ("unknown_kind.yaml", 3, "/acme/widgets", "Valid kinds: github-md, github-rst, scrape-via-agent, godoc"),
    ("empty_url.yaml", 6, "/acme/widgets", "empty URL"),
    ("non_http_url.yaml", 5, "/acme/widgets", "not an http(s) URL"),
    ("malformed_host.yaml", 5, "/acme/widgets", "malformed host `raw.githubusercontent..com`"),
    ("ref_without_ref.yaml", 5, "/acme/widgets", "no ref is set"),
    ("version_placeholder.yaml", 7, "/acme/widgets@1.0", "Use `{ref}`"),
    ("whitespace_ref.yaml", 4, "/acme/widgets", "without whitespace"),
    ("empty_version.yaml", 6, "/acme/widgets", "bad version name ``"),
    ("slash_version.yaml", 5, "/acme/widgets", "without `/`"),
    ("duplicate_slot.yaml", 7, "/acme/widgets", "duplicate slot"),
    ("duplicate_slug.yaml", 7, "/acme/widgets@1.0", "slug `acme_widgets_1.0`"),
    ("empty.yaml", 1, None, "empty"),
    ("no_libraries_key.yaml", 1, None, "unknown field `libs`"),
    ("empty_libraries.yaml", 1, None, "`libraries:` is empty"),
    ("legacy_versions_list.yaml", 5, "/acme/widgets", "retired shape"),
]


@pytest.mark.parametrize(("name", "line", "entry", "words"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_broken_registry_names_file_line_entry_and_next_step(name: str, line: int, entry: str | None,
                                                             words: str) -> None:
    path = BROKEN / name
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    message = str(info.value)
    assert f"{path}:{line}" in message
    if entry is not None:
        assert f"entry {entry}:" in message
    assert words in message
    assert message.rstrip().endswith(".") or message.rstrip().endswith("?")


def test_no_libraries_key_also_says_what_to_add() -> None:
    with pytest.raises(RegistryError, match="no `libraries:` list"):
        load_registry(BROKEN / "no_libraries_key.yaml")


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = (BROKEN / "unknown_kind.yaml").read_text() + (BROKEN / "non_http_url.yaml").read_text().replace(
        "libraries:\n", "").replace("/acme/widgets", "/acme/other")
    with pytest.raises(RegistryError) as info:
        parse_registry(text, "two.yaml")
    assert "2 problems" in str(info.value)


def test_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="DEADZONE_REGISTRY"):
        load_registry(tmp_path / "nope.yaml")


def test_selection_errors() -> None:
    slots = load_registry(DEADZONE_REGISTRY_FIXTURE)
    with pytest.raises(SelectionError, match="--version needs --lib"):
        select_slots(slots, None, "1.4")
    with pytest.raises(SelectionError, match="Did you mean `/spf13/cobra`"):
        select_slots(slots, "/spf13/cobr")
    with pytest.raises(SelectionError, match=r"it has: 1\.9, 1\.10"):
        select_slots(slots, "/spf13/cobra", "2.0")
    assert [s.version for s in select_slots(slots, "/spf13/cobra", "1.10")] == ["1.10"]


def test_shipped_registry_is_valid_and_matches_the_fixture_mirror() -> None:
    slots = load_registry(REPO / "libraries_sources.yaml")
    assert len(slots) == 20
    import json
    index = json.loads((FIXTURES / "docs-mirror" / "index.json").read_text())
    served = {u for s in slots for u in s.urls}
    absent = served - set(index)
    # The mirror deliberately lacks two upstream-absent paths (404 tests); everything else is there.
    assert len(absent) <= 2, absent


def test_a_null_url_list_or_ref_in_a_version_inherits_the_entrys() -> None:
    text = """\
libraries:
  - lib_id: /acme/widgets
    kind: github-md
    ref: v1.0.0
    versions:
      "1.0": { urls: ~, ref: ~ }
      "2.0": { ref: v2.0.0 }
    urls:
      - https://raw.githubusercontent.com/acme/widgets/{ref}/README.md
"""
    one, two = parse_registry(text, "inline.yaml")
    assert (one.ref, one.urls) == ("v1.0.0", ("https://raw.githubusercontent.com/acme/widgets/v1.0.0/README.md",))
    assert two.urls == ("https://raw.githubusercontent.com/acme/widgets/v2.0.0/README.md",)
