"""Reading `libraries_sources.yaml` exactly as laradji/deadzone does, and resolving its slots.

A *slot* is one (lib_id, version) with its effective ref, URLs and description. The file is
walked as a YAML node graph (not `safe_load`) so that every scalar stays the text the user
wrote (`ref: 2025-06-18` is "2025-06-18", a version key `1.10` is "1.10") and every error can
name its line. All problems of a file are reported at once.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit

import yaml

from deadzone_build.errors import RegistryError, SelectionError

try:  # the C composer (libyaml) is ~4x faster than the pure-Python one on a large registry
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

KINDS = ("github-md", "github-rst", "scrape-via-agent", "godoc")
ENTRY_FIELDS = ("lib_id", "kind", "urls", "ref", "description", "versions")
VERSION_FIELDS = ("ref", "urls", "description")
REF_PLACEHOLDER = "{ref}"
ALLOW_PRIVATE_HOSTS_ENV = "DEADZONE_ALLOW_PRIVATE_HOSTS"
# A slug names `artifacts/<slug>/` and its `.tmp-<slug>-<pid>-<token>` scratch dir (26 bytes more):
# file names are limited to 255 bytes.
MAX_LIB_ID_BYTES = 200

_NULL_TAG = "tag:yaml.org,2002:null"
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
_VERSION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_BAD_URL_CHAR = re.compile(r"[\x00-\x1f\x7f\s]")  # controls (CR, LF, tab...) and any Unicode whitespace


@dataclass(frozen=True)
class Slot:
    """One (library, version): the unit the build schedules, caches and releases."""

    lib_id: str
    version: str  # "" when the entry has no `versions:`
    kind: str
    ref: str  # "" when there is none
    urls: tuple[str, ...]  # resolved: {ref} substituted
    description: str
    slug: str
    line: int = field(default=0, compare=False)  # where the entry starts, for messages
    lock: str = ""  # canonical JSON of its lock entry's content half (registry/lock.py); "" when unlocked

    @property
    def label(self) -> str:
        """`lib_id` or `lib_id@version`, for humans."""
        return f"{self.lib_id}@{self.version}" if self.version else self.lib_id


def slug_for(lib_id: str, version: str) -> str:
    """`/a/b` + `1.2` → `a_b_1.2`: the slot's artifact directory and doit task name (unversioned: `a_b`)."""
    slug = lib_id.lstrip("/").replace("/", "_")
    return f"{slug}_{version}" if version else slug


# ── loading ──────────────────────────────────────────────────────────────────


class _Problems:
    """Collects every problem in a file so the user fixes them in one pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, node: yaml.Node | int, entry: str | None, message: str) -> None:
        line = node if isinstance(node, int) else node.start_mark.line + 1
        where = f"{self.path}:{line}"
        self.items.append(f"{where}: entry {entry}: {message}" if entry else f"{where}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            count = len(self.items)
            head = f"{self.path}: {count} problem{'s' if count > 1 else ''} in the registry:"
            raise RegistryError("\n".join([head, *("  " + item for item in self.items)]))


def load_registry(path: str | Path) -> list[Slot]:
    """Read, validate and resolve a registry into its slots, in registry then version order.

    Each slot carries its entry of the lock file beside the registry (`<name>.lock`), if any."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(
            f"{path}: registry not found. Pass --registry PATH, set DEADZONE_REGISTRY, "
            "or run from a directory holding libraries_sources.yaml."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read the registry ({exc}). Fix the file and retry.") from None
    from deadzone_build.registry.lock import attach_locks, lock_path_for, read_lock

    return attach_locks(parse_registry(text, path), read_lock(lock_path_for(path)))


def parse_registry(text: str, path: str | Path = "<registry>") -> list[Slot]:
    """Like `load_registry` for text already in memory; `path` only names it in messages."""
    path = Path(path)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RegistryError(
            f"{path}{line}: YAML syntax error: {problem}. Fix the YAML (indentation, quoting) and retry."
        ) from None
    problems = _Problems(path)
    entries = _library_nodes(root, problems)
    slots: list[Slot] = []
    for entry in entries:
        slots.extend(_entry_slots(entry, problems))
    _check_unique(slots, problems)
    problems.raise_if_any()
    return slots


def _library_nodes(root: yaml.Node | None, problems: _Problems) -> list[yaml.Node]:
    if root is None or not isinstance(root, yaml.MappingNode):
        line = root.start_mark.line + 1 if root is not None else 1
        problems.add(line, None, "the registry is empty or not a mapping. "
                     "Start it with `libraries:` followed by a list of entries.")
        problems.raise_if_any()
    mapping = _mapping(root, problems, None, ("libraries",))  # type: ignore[arg-type]
    libraries = mapping.get("libraries")
    if libraries is None or _is_null(libraries):
        problems.add(root, None, "no `libraries:` list. Add `libraries:` with at least one entry.")  # type: ignore[arg-type]
        problems.raise_if_any()
    if not isinstance(libraries, yaml.SequenceNode):
        problems.add(libraries, None, "`libraries:` must be a list of entries (`- lib_id: ...`).")  # type: ignore[arg-type]
        problems.raise_if_any()
    if not libraries.value:  # type: ignore[union-attr]
        problems.add(libraries, None, "`libraries:` is empty: nothing to build. Add at least one entry.")  # type: ignore[arg-type]
        problems.raise_if_any()
    return list(libraries.value)  # type: ignore[union-attr]


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def _suggest(name: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f" Did you mean `{close[0]}`?" if close else ""


def _mapping(node: yaml.Node, problems: _Problems, entry: str | None,
             valid: tuple[str, ...]) -> dict[str, yaml.Node]:
    """A mapping node as {key text: value node}; unknown and duplicate keys are problems."""
    result: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            problems.add(key_node, entry, "a field name must be plain text.")
            continue
        key = key_node.value
        if key not in valid:
            problems.add(key_node, entry, f"unknown field `{key}`.{_suggest(key, valid)} "
                         f"Valid fields: {', '.join(valid)}.")
        elif key in result:
            problems.add(key_node, entry, f"field `{key}` is given twice. Keep one.")
        else:
            result[key] = value_node
    return result


def _text(node: yaml.Node | None, problems: _Problems, entry: str | None, name: str) -> str | None:
    """A scalar as the exact text written; None when absent or null."""
    if node is None or _is_null(node):
        return None
    if not isinstance(node, yaml.ScalarNode):
        problems.add(node, entry, f"`{name}` must be a single value, not a list or mapping.")
        return None
    return node.value


def _url_list(node: yaml.Node | None, problems: _Problems, entry: str, name: str) -> list[tuple[str, int]] | None:
    """`urls:` as [(text, line)]; None when absent."""
    if node is None or _is_null(node):
        return None
    if not isinstance(node, yaml.SequenceNode):
        problems.add(node, entry, f"`{name}` must be a list of URLs (`- https://...`).")
        return []
    if not node.value:
        problems.add(node, entry, f"`{name}` is empty. List at least one URL, or remove the field to inherit.")
        return []
    urls = []
    for item in node.value:
        text = _text(item, problems, entry, name)
        if text is not None:
            urls.append((text, item.start_mark.line + 1))
        elif isinstance(item, yaml.ScalarNode):
            problems.add(item, entry, "empty URL. Remove the line or write the URL.")
    return urls


def _entry_slots(node: yaml.Node, problems: _Problems) -> list[Slot]:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, None, "each entry must be a mapping (`- lib_id: /org/project`).")
        return []
    raw_lib_id = None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == "lib_id":
            raw_lib_id = value_node.value if isinstance(value_node, yaml.ScalarNode) and not _is_null(value_node) else None
    entry = raw_lib_id or f"#{line}"
    fields = _mapping(node, problems, entry, ENTRY_FIELDS)
    for required in ("lib_id", "kind"):
        if required not in fields:
            problems.add(node, entry, f"missing field `{required}`. Add `{required}:` to the entry.")
        elif _is_null(fields[required]) or (isinstance(fields[required], yaml.ScalarNode)
                                            and not fields[required].value.strip()):
            problems.add(fields[required], entry, f"field `{required}` has no value. Write e.g. "
                         + ("`lib_id: /org/project`." if required == "lib_id" else f"`kind: github-md` ({', '.join(KINDS)})."))
    lib_id = _text(fields.get("lib_id"), problems, entry, "lib_id") or None
    if lib_id is not None:
        _check_lib_id(lib_id, fields["lib_id"], problems, entry)
    kind = _text(fields.get("kind"), problems, entry, "kind") or None
    if kind is not None and kind not in KINDS:
        problems.add(fields["kind"], entry, f"unknown kind `{kind}`.{_suggest(kind, KINDS)} "
                     f"Valid kinds: {', '.join(KINDS)}.")
    ref = _text(fields.get("ref"), problems, entry, "ref")
    _check_ref(ref, fields.get("ref"), problems, entry)
    description = (_text(fields.get("description"), problems, entry, "description") or "").strip()
    urls = _url_list(fields.get("urls"), problems, entry, "urls")
    versions = _versions(fields.get("versions"), problems, entry)
    if lib_id is None or kind is None:
        return []
    if versions is None:
        if urls is None:
            problems.add(node, entry, "missing field `urls`. List the documentation URLs under `urls:`.")
            return []
        return [_slot(lib_id, "", kind, ref, urls, description, line, problems, entry)]
    slots = []
    for name, overrides in versions:
        v_urls = urls if overrides.get("urls") is None else overrides["urls"]  # `urls: ~` inherits, like a null version
        if v_urls is None:
            problems.add(node, entry, f"version `{name}` has no URLs. Add `urls:` to the entry "
                         "or to the version.")
            continue
        v_ref = ref if overrides.get("ref") is None else overrides["ref"]
        v_desc = overrides.get("description") or description
        slots.append(_slot(lib_id, name, kind, v_ref, v_urls, v_desc, line, problems, entry))
    return slots


def _versions(node: yaml.Node | None, problems: _Problems, entry: str) -> list[tuple[str, dict]] | None:
    if node is None or _is_null(node):
        return None
    if isinstance(node, yaml.SequenceNode):
        problems.add(node, entry, "`versions:` as a list is the retired shape. Write a mapping: "
                     '`versions: {"1.4": { ref: v1.4.1 }}`.')
        return []
    if not isinstance(node, yaml.MappingNode) or not node.value:
        problems.add(node, entry, "`versions:` must be a non-empty mapping of version name to "
                     "{ref, urls, description}.")
        return []
    result: list[tuple[str, dict]] = []
    seen: set[str] = set()
    for key_node, value_node in node.value:
        name = key_node.value if isinstance(key_node, yaml.ScalarNode) else ""
        if not name or not _VERSION.fullmatch(name):
            problems.add(key_node, entry, f"bad version name `{name}`: it must be non-empty, without `/` "
                         "or spaces (letters, digits, `.`, `_`, `+`, `-`). Rename the version.")
            continue
        if name in seen:
            problems.add(key_node, entry, f"duplicate slot: version `{name}` is declared twice. Keep one.")
            continue
        seen.add(name)
        label = f"{entry}@{name}"
        overrides: dict = {}
        if not _is_null(value_node):
            if not isinstance(value_node, yaml.MappingNode):
                problems.add(value_node, label, "a version must map to {ref, urls, description} or be empty.")
                continue
            fields = _mapping(value_node, problems, label, VERSION_FIELDS)
            if "ref" in fields:
                overrides["ref"] = _text(fields["ref"], problems, label, "ref")
                _check_ref(overrides["ref"], fields["ref"], problems, label)
            if "urls" in fields:
                overrides["urls"] = _url_list(fields["urls"], problems, label, "urls")
            if "description" in fields:
                overrides["description"] = (_text(fields["description"], problems, label, "description") or "").strip()
        result.append((name, overrides))
    return result


def _check_lib_id(lib_id: str, node: yaml.Node, problems: _Problems, entry: str) -> None:
    segments = lib_id[1:].split("/") if lib_id.startswith("/") else []
    if not lib_id.startswith("/"):
        reason = "must start with `/`"
    elif lib_id.endswith("/"):
        reason = "must not end with `/`"
    elif any(s in ("", ".", "..") for s in segments):
        reason = "must not contain an empty, `.` or `..` segment"
    elif not all(_SEGMENT.fullmatch(s) for s in segments):
        reason = "may only use letters, digits, `.`, `_`, `+` and `-` between slashes"
    elif len(lib_id.encode()) > MAX_LIB_ID_BYTES:
        reason = (f"is {len(lib_id.encode())} bytes long, over {MAX_LIB_ID_BYTES} (its slug names files and "
                  "directories, which the file system limits to 255 bytes)")
    else:
        return
    problems.add(node, entry, f"bad lib_id `{lib_id}`: it {reason}. Write it as `/org/project`.")


def _check_ref(ref: str | None, node: yaml.Node | None, problems: _Problems, entry: str) -> None:
    if ref is not None and (not ref or any(c.isspace() for c in ref)):
        problems.add(node, entry, f"bad ref {ref!r}: a ref must be a non-empty git tag or commit "  # type: ignore[arg-type]
                     "without whitespace. Fix or remove `ref:`.")


def _slot(lib_id: str, version: str, kind: str, ref: str | None, urls: list[tuple[str, int]],
          description: str, line: int, problems: _Problems, entry: str) -> Slot:
    label = f"{entry}@{version}" if version else entry
    slug = slug_for(lib_id, version)
    if len(lib_id.encode()) <= MAX_LIB_ID_BYTES < len(slug.encode()):
        problems.add(line, label, f"slug `{slug[:40]}…` is {len(slug.encode())} bytes, over {MAX_LIB_ID_BYTES} "
                     "(it names files and directories). Shorten the lib_id or the version name.")
    resolved = []
    for url, url_line in urls:
        resolved.append(_resolve_url(url, ref, url_line, problems, label))
    return Slot(lib_id=lib_id, version=version, kind=kind, ref=ref or "", urls=tuple(resolved),
                description=description, slug=slug, line=line)


def _resolve_url(url: str, ref: str | None, line: int, problems: _Problems, label: str) -> str:
    if not url.strip():
        problems.add(line, label, "empty URL. Remove the line or write the URL.")
        return url
    for name in _PLACEHOLDER.findall(url):
        if name == "version":
            problems.add(line, label, f"`{{version}}` in {url} is retired. Use `{{ref}}` and give "
                         "each version a `ref:`.")
        elif name != "ref":
            problems.add(line, label, f"unknown placeholder `{{{name}}}` in {url}. `{{ref}}` is the only one.")
    if REF_PLACEHOLDER in url:
        if not ref:
            problems.add(line, label, f"{url} uses `{{ref}}` but no ref is set. Add `ref:` to the entry "
                         "or to this version.")
            return url
        url = url.replace(REF_PLACEHOLDER, ref)
    if _BAD_URL_CHAR.search(url):
        problems.add(line, label, f"{url!r} contains whitespace or a control character (CR, LF, tab...). "
                     "Write the URL on one line, with spaces encoded as %20.")
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.add(line, label, f"`{url}` is not an http(s) URL. Write a full https:// URL.")
    elif not _host_is_wellformed(parts.hostname or ""):
        problems.add(line, label, f"`{url}` has a malformed host `{parts.hostname}` (an empty or over-long "
                     "label). Correct the host name.")
    elif "@" in parts.netloc:
        problems.add(line, label, f"`{parts.scheme}://…@{parts.hostname}…` carries credentials (user:password@). "
                     "Remove them: a private repository is read with GITHUB_TOKEN.")
    elif (private := _private_address(parts.hostname or "")) and not private_hosts_allowed():
        problems.add(line, label, f"`{url}` points at a {private} address. Documentation is fetched from "
                     f"public hosts; set {ALLOW_PRIVATE_HOSTS_ENV}=1 if you really serve docs there.")
    return url


def private_hosts_allowed() -> bool:
    """$DEADZONE_ALLOW_PRIVATE_HOSTS=1: registry URLs may name loopback, private or link-local addresses."""
    return os.environ.get(ALLOW_PRIVATE_HOSTS_ENV, "").strip() == "1"


def _private_address(host: str) -> str | None:
    """"loopback", "link-local", "private"... for a literal IP address (or localhost), else None."""
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return "loopback"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for name, flag in (("loopback", address.is_loopback), ("link-local", address.is_link_local),
                       ("private", address.is_private), ("unspecified", address.is_unspecified),
                       ("reserved", address.is_reserved), ("multicast", address.is_multicast)):
        if flag:
            return name
    return None


def _host_is_wellformed(host: str) -> bool:
    """Every dot-separated label 1..63 characters (the IDNA codec's own check, without network)."""
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return bool(host)


def _check_unique(slots: list[Slot], problems: _Problems) -> None:
    by_id: dict[tuple[str, str], Slot] = {}
    by_slug: dict[str, Slot] = {}
    for slot in slots:
        first = by_id.get((slot.lib_id, slot.version))
        if first is not None:
            problems.add(slot.line, slot.label, f"duplicate slot: {slot.label} is already declared at "
                         f"line {first.line}. Merge the two entries.")
            continue
        by_id[(slot.lib_id, slot.version)] = slot
        other = by_slug.get(slot.slug)
        if other is not None:
            problems.add(slot.line, slot.label, f"slug `{slot.slug}` is also the slug of {other.label} "
                         f"(line {other.line}); their artifacts would collide. Rename one lib_id or version.")
            continue
        by_slug[slot.slug] = slot


# ── selection ────────────────────────────────────────────────────────────────


def select_slots(slots: list[Slot], lib_id: str | None = None, version: str | None = None) -> list[Slot]:
    """The slots matching `--lib`/`--version`; a filter that matches nothing is an error."""
    if version is not None and lib_id is None:
        raise SelectionError("--version needs --lib: name the library whose version you mean.")
    if lib_id is None:
        return list(slots)
    chosen = [s for s in slots if s.lib_id == lib_id]
    if not chosen:
        hint = _suggest(lib_id, sorted({s.lib_id for s in slots}))
        raise SelectionError(f"no library `{lib_id}` in the registry.{hint} "
                             "Run `deadzone-build list` to see every lib_id.")
    if version is not None:
        versions = [s.version for s in chosen]
        chosen = [s for s in chosen if s.version == version]
        if not chosen:
            shown = ", ".join(v or '""' for v in versions)
            raise SelectionError(f"{lib_id} has no version `{version}` (it has: {shown}). Pick one of those.")
    return chosen


def find_slot(slots: list[Slot], slug: str) -> Slot:
    """The slot whose slug is `slug`."""
    for slot in slots:
        if slot.slug == slug:
            return slot
    hint = _suggest(slug, [s.slug for s in slots])
    raise SelectionError(f"no slot with slug `{slug}` in the registry.{hint} "
                         "Run `deadzone-build list` to see every slug.")
