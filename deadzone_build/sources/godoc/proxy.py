"""Module zips from a Go module proxy, verified against the checksum database before use.

    module_files(target, client, settings, label) -> (FetchResult, {path in module: bytes})

The zip is fetched (`DEADZONE_GOPROXY` replaces the proxy of the registry URL), its `h1:` hash
computed as Go's `golang.org/x/mod/sumdb/dirhash.HashZip` does (sha256 of the sorted lines
"<sha256 hex>  <file name>\\n", base64) and compared with the `h1:` line of
`<sumdb>/lookup/<module>@<version>` (`DEADZONE_SUMDB`, default https://sum.golang.org). The
note's signature and Merkle proof are not checked: the hash is trusted as the sumdb server
(over HTTPS) sent it. Every entry must be a regular file under `<module>@<version>/` with no
`..`, absolute or backslash path (zip-slip); nothing is written to disk.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import os
import zipfile

import httpx

from deadzone_build.errors import ScrapeError
from deadzone_build.sources import fetch
from deadzone_build.sources.godoc.listing import ProxyURL, escape_module

GOPROXY_ENV = "DEADZONE_GOPROXY"
SUMDB_ENV = "DEADZONE_SUMDB"
DEFAULT_SUMDB = "https://sum.golang.org"
MAX_ZIP_BYTES = 500 * 1024 * 1024  # Go's own limits for a module zip (modzip.MaxZipFile/MaxFileSize)
MAX_FILE_BYTES = 500 * 1024 * 1024


def zip_url(target: ProxyURL) -> str:
    base = os.environ.get(GOPROXY_ENV, "").strip().rstrip("/") or target.base
    return f"{base}/{escape_module(target.module)}/@v/{escape_module(target.version)}.zip"


def lookup_url(target: ProxyURL) -> str:
    base = os.environ.get(SUMDB_ENV, "").strip().rstrip("/") or DEFAULT_SUMDB
    return f"{base}/lookup/{escape_module(target.module)}@{escape_module(target.version)}"


def hash_zip(data: bytes) -> str:
    """dirhash.HashZip (`h1:`) of a module zip."""
    summary = hashlib.sha256()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in sorted(info.filename for info in archive.infolist() if not info.is_dir()):
            if "\n" in name:
                raise ValueError(f"file name with a newline: {name!r}")
            summary.update(f"{hashlib.sha256(archive.read(name)).hexdigest()}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


def sumdb_hash(text: str, module: str, version: str) -> str | None:
    """The `h1:` of `module version` in a /lookup answer (None when the line is missing)."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == module and fields[1] == version and fields[2].startswith("h1:"):
            return fields[2]
    return None


def safe_members(archive: zipfile.ZipFile, prefix: str, label: str, url: str) -> list[zipfile.ZipInfo]:
    """The regular files of the zip, each checked to stay under `prefix` (zip-slip guard)."""
    members = []
    total = 0
    for info in archive.infolist():
        name = info.filename
        parts = name.split("/")
        if (not name.startswith(prefix) or "\\" in name or name.startswith("/") or ".." in parts
                or any(p in ("", ".") for p in parts[:-1])):
            raise ScrapeError(f"{label}: {url}: unsafe path {name!r} in the module zip (every file must be "
                              f"under {prefix}); the zip is rejected.")
        if info.is_dir():
            continue
        total += info.file_size
        if info.file_size > MAX_FILE_BYTES or total > MAX_ZIP_BYTES:
            raise ScrapeError(f"{label}: {url}: the module zip unpacks to more than {MAX_ZIP_BYTES} bytes; "
                              "it is rejected.")
        members.append(info)
    return members


def module_files(target: ProxyURL, client: httpx.Client, settings: fetch.FetchSettings,
                 label: str) -> tuple[fetch.FetchResult, dict[str, bytes]]:
    """The verified files of the module, keyed by their path inside the module."""
    url = zip_url(target)
    zip_settings = dataclasses.replace(settings, max_bytes=max(settings.max_bytes, MAX_ZIP_BYTES))
    result = fetch.fetch_one(url, client, zip_settings, binary=True)
    where = f"{label}: {target.url}"
    if not result.ok or result.content is None:
        if result.http_status == 404:
            raise ScrapeError(f"{where}: module not found (HTTP 404 from {url}): {target.module}@{target.version} "
                              "is not on the proxy. Fix the module path or version, or remove the entry.")
        if result.http_status == 410:
            raise ScrapeError(f"{where}: module withdrawn (HTTP 410 Gone from {url}): the proxy no longer "
                              f"serves {target.module}@{target.version}. Pick another version.")
        raise ScrapeError(f"{where}: cannot fetch the module zip {url}: {result.reason}")
    lookup = fetch.fetch_one(lookup_url(target), client, settings)
    if not lookup.ok or lookup.text is None:
        raise ScrapeError(f"{where}: cannot verify the module: the checksum database lookup "
                          f"{lookup_url(target)} failed ({lookup.reason}). Set {SUMDB_ENV} to a reachable "
                          "checksum database and retry.")
    expected = sumdb_hash(lookup.text, target.module, target.version)
    if expected is None:
        raise ScrapeError(f"{where}: the checksum database answer for {target.module}@{target.version} has no "
                          "h1: line; the module cannot be verified.")
    try:
        actual = hash_zip(result.content)
        archive = zipfile.ZipFile(io.BytesIO(result.content))
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise ScrapeError(f"{where}: the module zip from {url} is not a valid zip ({exc}).") from None
    if actual != expected:
        raise ScrapeError(f"{where}: checksum mismatch for {target.module}@{target.version}: the zip from {url} "
                          f"hashes to {actual} but the checksum database says {expected}. The download was "
                          "altered or the proxy is wrong; nothing was built.")
    prefix = f"{target.module}@{target.version}/"
    with archive:
        members = safe_members(archive, prefix, label, url)
        files = {info.filename[len(prefix):]: archive.read(info) for info in members}
    result = dataclasses.replace(result, url=target.url, content=None)
    return result, files
