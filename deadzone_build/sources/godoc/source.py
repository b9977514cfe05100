"""`collect` for kind godoc: each registry URL is one package (Contents API) or one module (proxy).

Any URL that fails fails the slot: a package with a file missing would silently lose
identifiers. Documents carry pkg.go.dev URLs with the identifier's anchor.
"""

from __future__ import annotations

import posixpath
from typing import Any

from deadzone_build.errors import ScrapeError
from deadzone_build.registry.load import Slot
from deadzone_build.sources import fetch
from deadzone_build.sources.base import Document, SourceContext, SourceResult
from deadzone_build.sources.godoc import pins
from deadzone_build.sources.godoc.constraints import package_files
from deadzone_build.sources.godoc.listing import ContentsURL, list_directory, parse_url
from deadzone_build.sources.godoc.parse import parse_file
from deadzone_build.sources.godoc.proxy import module_files
from deadzone_build.sources.godoc.reader import read_package
from deadzone_build.sources.godoc.render import render_package

_SKIPPED_DIRS = frozenset({"vendor", "testdata"})


def collect(slot: Slot, context: SourceContext) -> SourceResult:
    pins.check_installed()
    documents: list[Document] = []
    reports: list[dict[str, Any]] = []
    for url in slot.urls:
        target = parse_url(url, slot.label)
        if isinstance(target, ContentsURL):
            report, files = _contents_package(target, slot, context)
            packages = {target.import_path: files}
            version = target.ref
        else:
            report, module = module_files(target, context.client, context.settings, slot.label)
            packages = module_packages(target.module, module)
            version = target.version
        count = 0
        for import_path in sorted(packages):
            count += _add_documents(documents, import_path, packages[import_path], version, url, slot)
        if count == 0:
            raise ScrapeError(f"{slot.label}: {url}: Go package not found: no buildable non-test .go files "
                              "(only other packages or test files are there). Fix the URL or remove the entry.")
        reports.append(report.report())
    return SourceResult(documents, reports)


def _add_documents(documents: list[Document], import_path: str, files: dict[str, bytes], version: str,
                   source_url: str, slot: Slot) -> int:
    names = package_files(files)
    if not names:
        return 0
    try:
        parsed = [parse_file(name, files[name]) for name in names]
    except ValueError as exc:
        raise ScrapeError(f"{slot.label}: {source_url}: {import_path}: cannot read {exc}; not Go source.") from None
    package = read_package(import_path, parsed)
    page = f"https://pkg.go.dev/{import_path}" + (f"@{version}" if version else "")
    rendered = render_package(package)
    for doc in rendered:
        documents.append(Document(url=page + (f"#{doc.anchor}" if doc.anchor else ""), markdown=doc.markdown,
                                  source_url=source_url))
    return max(1, len(rendered))


def _contents_package(target: ContentsURL, slot: Slot, context: SourceContext
                      ) -> tuple[fetch.FetchResult, dict[str, bytes]]:
    listing, entries = list_directory(target, context.client, context.settings, slot.label)
    urls = [str(entry["download_url"]) for entry in entries]
    results = context.fetch_all(urls)
    dropped = [r for r in results if not r.ok]
    if dropped:
        listed = "; ".join(f"{r.url} ({r.reason})" for r in dropped[:5])
        raise ScrapeError(f"{slot.label}: {target.url}: {len(dropped)} of {len(results)} Go files could not be "
                          f"fetched: {listed}. A package with files missing would lose identifiers; retry later "
                          "or fix the mirror.")
    files = {str(entry["name"]): (r.text or "").encode("utf-8") for entry, r in zip(entries, results)}
    return listing, files


def module_packages(module: str, files: dict[str, bytes]) -> dict[str, dict[str, bytes]]:
    """The module's package directories → {file name: bytes}, without vendor/, testdata/,
    dot or underscore directories (go/build ignores them too)."""
    packages: dict[str, dict[str, bytes]] = {}
    for path, data in files.items():
        directory, name = posixpath.split(path)
        parts = [p for p in directory.split("/") if p]
        if any(p in _SKIPPED_DIRS or p.startswith((".", "_")) for p in parts):
            continue
        import_path = "/".join([module, *parts])
        packages.setdefault(import_path, {})[name] = data
    return packages
