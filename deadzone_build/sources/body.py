"""Document bodies: what a source accepts, read with the size cap held while decoding.

    Accept / DOC_ACCEPT               what a kind takes (media types, text or bytes, HTML, empty)
    read_bounded(response, ...)       the decoded body; TooLarge past the cap, DeadlinePassed when slow
    media_problem / body_problem      why a response does not fit an Accept (None when it does)

httpx's own decoders expand a whole chunk before any cap can be checked (a 5 KB double-gzip body
became GBs); here every Content-Encoding layer is undone with zlib's `max_length`.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import httpx

@dataclass(frozen=True)
class Accept:
    """What a source accepts as a document body (each kind passes its own to `fetch_all`).

    `media_types`: accepted Content-Type media types (None: any; a missing header always passes).
    `text`: the body must be UTF-8 text (decoded into `FetchResult.text`); else the raw bytes are
    kept in `FetchResult.content`. `html`: an HTML page is acceptable. `empty`: an empty body is.
    """

    media_types: frozenset[str] | None = None
    text: bool = True
    html: bool = False
    empty: bool = False
    what: str = "a document"


# Any UTF-8 text, whatever its Content-Type, HTML and empty bodies included: what every kind got
# before content checks existed (the default of fetch_all/fetch_one, so no kind changes unasked).
TEXT_ACCEPT = Accept(media_types=None, text=True, html=True, empty=True, what="a text document")
# Any body, kept as bytes (fetch_one(binary=True): a Go module zip).
BINARY_ACCEPT = Accept(media_types=None, text=False, html=True, empty=True, what="a file")
# github-md / github-rst: raw.githubusercontent.com serves every file as text/plain; other hosts
# use these for docs.
DOC_ACCEPT = Accept(media_types=frozenset({
    "text/plain", "text/markdown", "text/x-markdown", "text/x-rst", "text/prs.fallenstein.rst",
    "application/octet-stream", "binary/octet-stream"}), what="a markdown or reStructuredText document")
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})




class DeadlinePassed(Exception):
    """The document's deadline passed between two reads."""


class TooLarge(Exception):
    """The body, on the wire or once decoded, passed the cap."""


class UndecodableBody(Exception):
    """A compressed body that zlib cannot decode (truncated or corrupt)."""


def media_problem(media: str, accept: Accept) -> str | None:
    """Why a response of Content-Type `media` (lowercased, no parameters) is refused, or None."""
    if not media:
        return None
    if media in HTML_TYPES and not accept.html:
        return (f"an HTML page (Content-Type {media}), not {accept.what}: link the raw file "
                "(e.g. raw.githubusercontent.com) or remove the URL.")
    if accept.media_types is not None and media not in accept.media_types and not (accept.html and media in HTML_TYPES):
        return f"Content-Type {media} is not {accept.what}; link the raw file or remove the URL."
    return None


class _Deflate:
    """HTTP `deflate`: zlib-wrapped as the RFC says, or raw deflate as some servers send (like httpx)."""

    def __init__(self) -> None:
        self._inner = zlib.decompressobj()
        self._first = True

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._first:
            self._first = False
            try:
                return self._inner.decompress(data, max_length)
            except zlib.error:
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._inner.decompress(data, max_length)

    def flush(self) -> bytes:
        return self._inner.flush()


class BoundedDecoder:
    """Content-Encoding layers undone with zlib's `max_length`, so no layer ever holds more than
    `limit` + 1 bytes: a 5 KB double-gzip bomb costs a few MB, never its expanded size."""

    def __init__(self, encodings: Sequence[str], limit: int) -> None:
        self.limit = limit
        self.stages: list[Any] = []
        for encoding in reversed(encodings):  # the last encoding listed was applied last
            if encoding == "identity":
                continue
            if encoding in ("gzip", "x-gzip"):
                self.stages.append(zlib.decompressobj(zlib.MAX_WBITS | 16))
            elif encoding == "deflate":
                self.stages.append(_Deflate())
            else:
                raise ValueError(f"Content-Encoding {encoding!r} is not supported (gzip and deflate are)")
        self.produced = [0] * len(self.stages)

    def feed(self, data: bytes, final: bool = False) -> bytes:
        for index, stage in enumerate(self.stages):
            budget = self.limit - self.produced[index]
            try:
                out = stage.decompress(data, budget + 1) if data else b""
                if final:
                    out += stage.flush()
            except zlib.error as exc:
                raise UndecodableBody(str(exc)) from None
            if len(out) > budget:
                raise TooLarge
            self.produced[index] += len(out)
            data = out
        return data


def read_bounded(response: httpx.Response, encodings: Sequence[str], max_bytes: int, deadline: float) -> bytes:
    """The decoded body; TooLarge as soon as the wire or any decoded layer passes `max_bytes`,
    DeadlinePassed when `deadline` (time.monotonic()) passes between two reads."""
    decoder = BoundedDecoder(encodings, max_bytes)
    body = bytearray()
    wire = 0
    for chunk in response.iter_raw():
        if time.monotonic() > deadline:
            raise DeadlinePassed
        wire += len(chunk)
        if wire > max_bytes:
            raise TooLarge
        body += decoder.feed(chunk)
    body += decoder.feed(b"", final=True)
    if len(body) > max_bytes:
        raise TooLarge
    return bytes(body)


def body_problem(body: bytes, accept: Accept) -> str | None:
    """Why `body` is not a document `accept` takes (empty, not UTF-8 text, an HTML page), or None."""
    if not accept.empty and not body.strip():
        return (f"an empty body ({len(body)} bytes), not {accept.what}; check the URL (a moved file "
                "can leave an empty page) or remove it.")
    if not accept.text:
        return None
    problem = text_problem(body)
    if problem is None and not accept.html and looks_like_html(body):
        problem = (f"an HTML page (it starts with <html> or <!DOCTYPE html>), not {accept.what}: "
                   "link the raw file or remove the URL.")
    return problem


def looks_like_html(body: bytes) -> bool:
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:64].lower()
    return head.startswith((b"<!doctype html", b"<html"))


def text_problem(body: bytes) -> str | None:
    if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16 text, but only UTF-8 documents are read; link a UTF-8 copy or remove the URL."
    nul = body.find(b"\x00")
    if nul >= 0:
        return f"binary content (NUL byte at offset {nul}), not a text document; remove the URL from the registry."
    try:
        body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return (f"not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start}); "
                "link a UTF-8 copy or remove the URL.")
    return None
