"""A fake GitHub REST API for the release tests: the real endpoints and JSON shapes, on 127.0.0.1.

    fake = FakeGitHub(token=FAKE_TOKEN)       # fixture `fake_github`, started and stopped for you
    fake.api_url                               http://127.0.0.1:PORT/api/v3   (a GHES-style base)
    release["upload_url"]                      http://127.0.0.1:PORT/uploads/repos/O/R/releases/ID/assets{?name,label}
    fake.fail("POST", "/uploads/", 500, times=2)     fault injection (status, headers, applied or not)
    fake.hold("DELETE", "/releases/assets/")         park the next match: the client can be killed mid-run
    fake.requests                              every request served: method, path, query, status
    fake.released(tag)                         {asset name: bytes} of a release

Served: GET releases/tags/{tag} (never drafts, as on GitHub), GET releases/latest, GET/POST
releases, PATCH releases/{id}, GET releases/{id}/assets, GET/PATCH/DELETE releases/assets/{id}
(GET with Accept: application/octet-stream serves the bytes, or a 302 to /download/ when
`redirect_downloads`), POST on the upload_url (422 already_exists on a taken name, like GitHub).
Also the reads the other clients make:
GET actions/caches?key=PREFIX (`add_caches`; filtered by key prefix, paged, with total_count),
GET contents/{path}?ref= (`add_file`; a directory answers its entry list, a file its entry with
base64 content, like GitHub), GET commits/{ref} (`set_ref`; Accept: application/vnd.github.sha
answers the bare SHA, else JSON; an unknown ref is a 422 as on GitHub), GET tags (`set_ref(...,
tag=True)`; paged, newest first).
Tokens are checked on every request (`token` or `Bearer` scheme, as GitHub accepts both): a wrong
one is a 401, none is anonymous (public reads). Each request's record has its `auth` scheme
("bearer", "token" or None) but never the token.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

__all__ = ["fake_github"]  # conftest imports the fixture; tests import the rest

FAKE_TOKEN = "ghp_FAKEtoken0123456789abcdefghijklmnopq"
FAKE_REPO = "acme/deadzone"
API_PREFIX = "/api/v3"
NOW = "2025-06-18T12:00:00Z"
DOCS = "https://docs.github.com/rest"


@dataclass
class Fault:
    method: str
    pattern: str
    status: int
    times: int
    headers: dict[str, str]
    message: str
    apply: bool  # carry out the request, then answer the fault (the response was lost)


@dataclass
class Hold:
    method: str
    pattern: str
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


class FakeGitHub:
    """State (releases, assets) plus the HTTP server that speaks GitHub's wire format for it."""

    def __init__(self, token: str = FAKE_TOKEN, repo: str = FAKE_REPO, *, digests: bool = True,
                 redirect_downloads: bool = False) -> None:
        self.token, self.repo = token, repo
        self.digests, self.redirect_downloads = digests, redirect_downloads
        self.releases: dict[int, dict[str, Any]] = {}
        self.assets: dict[int, dict[str, Any]] = {}  # id -> meta (+ "_data", "_release")
        self.requests: list[dict[str, Any]] = []
        self.snapshots: list[list[tuple[str, bytes]]] = []  # a release's assets after every change
        self.corrupt: set[str] = set()  # asset names served with a flipped byte
        self.caches: list[dict[str, Any]] = []  # actions/cache entries, newest access first
        self.total_count_override: int | None = None  # a stale total_count (evictions between pages)
        self.files: dict[tuple[str, str], bytes] = {}  # (ref, path) -> bytes
        self.refs: dict[str, str] = {}  # branch or tag -> commit SHA
        self.tag_names: list[str] = []  # newest first, as GET tags orders them
        self._faults: list[Fault] = []
        self._holds: list[Hold] = []
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # lifecycle ---------------------------------------------------------------

    def start(self) -> "FakeGitHub":
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        for hold in self._holds:
            hold.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.base + API_PREFIX

    # test controls -----------------------------------------------------------

    def fail(self, method: str, pattern: str, status: int, *, times: int = 1, headers: dict[str, str] | None = None,
             message: str = "Server Error", apply: bool = False) -> None:
        """Answer the next `times` requests whose path matches `pattern` with `status`."""
        self._faults.append(Fault(method, pattern, status, times, headers or {}, message, apply))

    def clear_faults(self) -> None:
        self._faults.clear()

    def hold(self, method: str, pattern: str) -> Hold:
        """Park the next matching request until `hold.released` is set, then drop it unanswered."""
        hold = Hold(method, pattern)
        self._holds.append(hold)
        return hold

    def count(self, method: str, pattern: str = "") -> int:
        return sum(1 for r in self.requests if r["method"] == method and re.search(pattern, r["path"]))

    @property
    def uploads(self) -> int:
        return self.count("POST", "^/uploads/")

    def writes(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] != "GET"]

    def release_for(self, tag: str) -> dict[str, Any]:
        matches = [r for r in self.releases.values() if r["tag_name"] == tag]
        assert len(matches) == 1, f"{len(matches)} releases for {tag}"
        return matches[0]

    def asset_names(self, tag: str) -> list[str]:
        rel = self.release_for(tag)
        return sorted(a["name"] for a in self.assets.values() if a["_release"] == rel["id"])

    def released(self, tag: str) -> dict[str, bytes]:
        rel = self.release_for(tag)
        return {a["name"]: a["_data"] for a in self.assets.values() if a["_release"] == rel["id"]}

    def add_asset(self, tag: str, name: str, data: bytes, state: str = "uploaded") -> dict[str, Any]:
        """Put an asset straight into a release (e.g. a leftover of an older, crashed tool)."""
        with self._lock:
            return self._new_asset(self.release_for(tag), name, data, "application/octet-stream", state)

    def add_caches(self, keys: list[str], ref: str = "refs/heads/main") -> None:
        """Entries the repository's actions cache holds, in GitHub's JSON shape."""
        with self._lock:
            for key in keys:
                n = len(self.caches) + 1
                self.caches.append({
                    "id": 1000 + n, "ref": ref, "key": key, "version": f"{n:064x}",
                    "last_accessed_at": "2026-01-02T03:04:05.000000000Z",
                    "created_at": "2026-01-01T00:00:00.000000000Z", "size_in_bytes": 4096 + n,
                })

    def add_file(self, path: str, data: bytes, ref: str = "main") -> None:
        """A file of the repository at `ref` (its directories exist implicitly)."""
        self.files[(ref, path.strip("/"))] = data
        self.refs.setdefault(ref, hashlib.sha1(ref.encode()).hexdigest())

    def set_ref(self, name: str, sha: str, *, tag: bool = False) -> None:
        """Point branch or tag `name` at commit `sha`; a tag also joins GET tags (newest first)."""
        self.refs[name] = sha
        if tag and name not in self.tag_names:
            self.tag_names.insert(0, name)

    def pages_requested(self, pattern: str) -> list[int]:
        return [int(r["query"].get("page", "1")) for r in self.requests if re.search(pattern, r["path"])]

    # JSON shapes -------------------------------------------------------------

    def _repo_api(self) -> str:
        return f"{self.api_url}/repos/{self.repo}"

    def release_json(self, rel: dict[str, Any]) -> dict[str, Any]:
        rid, tag = rel["id"], rel["tag_name"]
        shown_tag = f"untagged-{rid:x}" if rel["draft"] else tag
        return {
            "url": f"{self._repo_api()}/releases/{rid}",
            "assets_url": f"{self._repo_api()}/releases/{rid}/assets",
            "upload_url": f"{self.base}/uploads/repos/{self.repo}/releases/{rid}/assets{{?name,label}}",
            "html_url": f"{self.base}/{self.repo}/releases/tag/{shown_tag}",
            "id": rid, "node_id": f"RE_{rid}", "tag_name": tag, "target_commitish": "main",
            "name": rel["name"], "body": "", "draft": rel["draft"], "prerelease": rel["prerelease"],
            "immutable": False, "created_at": NOW, "published_at": None if rel["draft"] else NOW,
            "author": {"login": "octocat", "id": 1, "type": "User"},
            "assets": [self.asset_json(a) for a in self.assets.values() if a["_release"] == rid],
            "tarball_url": f"{self._repo_api()}/tarball/{tag}", "zipball_url": f"{self._repo_api()}/zipball/{tag}",
        }

    def asset_json(self, asset: dict[str, Any]) -> dict[str, Any]:
        rel = self.releases[asset["_release"]]
        shown = {k: v for k, v in asset.items() if not k.startswith("_")}
        shown["browser_download_url"] = f"{self.base}/{self.repo}/releases/download/{rel['tag_name']}/{asset['name']}"
        if not self.digests:
            shown.pop("digest", None)
        return shown

    def _new_asset(self, rel: dict[str, Any], name: str, data: bytes, content_type: str,
                   state: str = "uploaded") -> dict[str, Any]:
        aid = next(self._ids)
        asset = {
            "url": f"{self._repo_api()}/releases/assets/{aid}", "id": aid, "node_id": f"RA_{aid}",
            "name": name, "label": "", "uploader": {"login": "octocat", "id": 1}, "content_type": content_type,
            "state": state, "size": len(data), "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "download_count": 0, "created_at": NOW, "updated_at": NOW,
            "_data": data, "_release": rel["id"],
        }
        self.assets[aid] = asset
        self._snapshot(rel)
        return asset

    def _snapshot(self, rel: dict[str, Any]) -> None:
        self.snapshots.append([(a["name"], a["_data"]) for a in self.assets.values() if a["_release"] == rel["id"]])

    # dispatch ----------------------------------------------------------------

    def handle(self, req: "_Handler") -> None:
        parts = urlsplit(req.path)
        path, query = unquote(parts.path), {k: v[-1] for k, v in parse_qs(parts.query).items()}
        scheme = (req.headers.get("Authorization") or "").partition(" ")[0].lower() or None
        record = {"method": req.command, "path": path, "query": query, "status": None, "auth": scheme}
        with self._lock:
            self.requests.append(record)
            hold = next((h for h in self._holds if not h.reached.is_set() and h.method == req.command
                         and re.search(h.pattern, path)), None)
        if hold is not None:
            hold.reached.set()
            hold.released.wait(120)
            record["status"] = "dropped"
            req.close_connection = True
            return
        body = req.rfile.read(int(req.headers["Content-Length"])) if req.headers.get("Content-Length") else b""
        with self._lock:
            fault = next((f for f in self._faults if f.times > 0 and f.method == req.command
                          and re.search(f.pattern, path)), None)
            if fault is not None:
                fault.times -= 1
            if fault is None or fault.apply:
                status, headers, payload = self._route(req, path, query, body)
            if fault is not None:
                status, headers = fault.status, dict(fault.headers)
                payload = {"message": fault.message, "documentation_url": DOCS}
            record["status"] = status
        req.reply(status, headers, payload)

    def _route(self, req: "_Handler", path: str, query: dict[str, str], body: bytes) -> tuple[int, dict, Any]:
        if path.startswith("/download/"):
            return self._download(int(path.rsplit("/", 1)[1]))
        auth = self._auth(req.headers.get("Authorization"))
        if auth is not None:
            return auth
        authed = req.headers.get("Authorization") is not None
        api = re.escape(f"{API_PREFIX}/repos/{self.repo}")
        routes = [
            ("GET", rf"{api}/releases/tags/(.+)", self._get_by_tag),
            ("GET", rf"{api}/releases/latest", self._latest),
            ("GET", rf"{api}/releases", self._list_releases),
            ("POST", rf"{api}/releases", self._create_release),
            ("PATCH", rf"{api}/releases/(\d+)", self._update_release),
            ("GET", rf"{api}/releases/(\d+)/assets", self._list_assets),
            ("GET", rf"{api}/releases/assets/(\d+)", self._get_asset),
            ("PATCH", rf"{api}/releases/assets/(\d+)", self._update_asset),
            ("DELETE", rf"{api}/releases/assets/(\d+)", self._delete_asset),
            ("POST", rf"/uploads/repos/{re.escape(self.repo)}/releases/(\d+)/assets", self._upload),
            ("GET", rf"{api}/actions/caches", self._list_caches),
            ("GET", rf"{api}/contents/?(.*)", self._contents),
            ("GET", rf"{api}/commits/(.+)", self._commit),
            ("GET", rf"{api}/tags", self._tags),
        ]
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and method == req.command:
                if method != "GET" and not authed:
                    return 401, {}, {"message": "Requires authentication", "documentation_url": DOCS}
                data = json.loads(body) if body and not path.startswith("/uploads/") else body
                return handler(*match.groups(), query=query, body=data, req=req, authed=authed)
        return 404, {}, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}

    def _auth(self, header: str | None) -> tuple[int, dict, Any] | None:
        if header is None:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or value != self.token:
            return 401, {}, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}
        return None

    # endpoints ---------------------------------------------------------------

    def _get_by_tag(self, tag: str, **_: Any) -> tuple[int, dict, Any]:
        found = [r for r in self.releases.values() if r["tag_name"] == tag and not r["draft"]]
        return (200, {}, self.release_json(found[0])) if found else _not_found()

    def _latest(self, **_: Any) -> tuple[int, dict, Any]:
        published = [r for r in self.releases.values() if not r["draft"] and not r["prerelease"]]
        return (200, {}, self.release_json(published[-1])) if published else _not_found()

    def _list_releases(self, *, query: dict[str, str], authed: bool, **_: Any) -> tuple[int, dict, Any]:
        visible = [r for r in reversed(list(self.releases.values())) if authed or not r["draft"]]
        return 200, {}, [self.release_json(r) for r in _page(visible, query)]

    def _create_release(self, *, body: dict[str, Any], **_: Any) -> tuple[int, dict, Any]:
        tag, draft = body["tag_name"], bool(body.get("draft", False))
        if not draft and any(r["tag_name"] == tag and not r["draft"] for r in self.releases.values()):
            return _invalid("Release", "tag_name")
        rid = next(self._ids)
        self.releases[rid] = {"id": rid, "tag_name": tag, "name": body.get("name") or tag, "draft": draft,
                              "prerelease": bool(body.get("prerelease", False))}
        return 201, {}, self.release_json(self.releases[rid])

    def _update_release(self, rid: str, *, body: dict[str, Any], **_: Any) -> tuple[int, dict, Any]:
        rel = self.releases.get(int(rid))
        if rel is None:
            return _not_found()
        if "draft" in body:
            if not body["draft"] and any(r["tag_name"] == rel["tag_name"] and not r["draft"] and r is not rel
                                         for r in self.releases.values()):
                return _invalid("Release", "tag_name")
            rel["draft"] = bool(body["draft"])
        return 200, {}, self.release_json(rel)

    def _list_assets(self, rid: str, *, query: dict[str, str], **_: Any) -> tuple[int, dict, Any]:
        if int(rid) not in self.releases:
            return _not_found()
        assets = [self.asset_json(a) for a in self.assets.values() if a["_release"] == int(rid)]
        return 200, {}, _page(assets, query)

    def _get_asset(self, aid: str, *, req: "_Handler", **_: Any) -> tuple[int, dict, Any]:
        asset = self.assets.get(int(aid))
        if asset is None:
            return _not_found()
        if "application/octet-stream" not in (req.headers.get("Accept") or ""):
            return 200, {}, self.asset_json(asset)
        if self.redirect_downloads:
            return 302, {"Location": f"{self.base}/download/{aid}?X-Amz-Signature=fake"}, b""
        return self._download(int(aid))

    def _download(self, aid: int) -> tuple[int, dict, Any]:
        asset = self.assets.get(aid)
        if asset is None:
            return _not_found()
        data = asset["_data"]
        if asset["name"] in self.corrupt and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return 200, {"Content-Type": "application/octet-stream"}, data

    def _update_asset(self, aid: str, *, body: dict[str, Any], **_: Any) -> tuple[int, dict, Any]:
        asset = self.assets.get(int(aid))
        if asset is None:
            return _not_found()
        name = body.get("name", asset["name"])
        if any(a["name"] == name and a["_release"] == asset["_release"] and a is not asset
               for a in self.assets.values()):
            return _invalid("ReleaseAsset", "name")
        asset.update(name=name, label=body.get("label", asset["label"]))
        self._snapshot(self.releases[asset["_release"]])
        return 200, {}, self.asset_json(asset)

    def _delete_asset(self, aid: str, **_: Any) -> tuple[int, dict, Any]:
        asset = self.assets.pop(int(aid), None)
        if asset is None:
            return _not_found()
        self._snapshot(self.releases[asset["_release"]])
        return 204, {}, b""

    def _upload(self, rid: str, *, query: dict[str, str], body: bytes, req: "_Handler",
                **_: Any) -> tuple[int, dict, Any]:
        rel = self.releases.get(int(rid))
        if rel is None:
            return _not_found()
        if req.headers.get("Content-Length") is None:
            return 411, {}, {"message": "Length Required"}
        name = query.get("name", "")
        if any(a["name"] == name and a["_release"] == rel["id"] for a in self.assets.values()):
            return _invalid("ReleaseAsset", "name")
        asset = self._new_asset(rel, name, body, req.headers.get("Content-Type") or "application/octet-stream")
        return 201, {}, self.asset_json(asset)


    def _list_caches(self, *, query: dict[str, str], **_: Any) -> tuple[int, dict, Any]:
        matching = [c for c in self.caches if c["key"].startswith(query.get("key", ""))]
        total = len(matching) if self.total_count_override is None else self.total_count_override
        return 200, {}, {"total_count": total, "actions_caches": _page(matching, query)}

    def _contents(self, path: str, *, query: dict[str, str], **_: Any) -> tuple[int, dict, Any]:
        ref, path = query.get("ref", "main"), path.strip("/")
        if (ref, path) in self.files:
            entry = self._content_entry(ref, path, "file")
            data = self.files[(ref, path)]
            return 200, {}, {**entry, "encoding": "base64",
                             "content": base64.encodebytes(data).decode("ascii")}  # wrapped at 76, as GitHub does
        below = sorted({p[len(path) + 1:].split("/", 1)[0] if path else p.split("/", 1)[0]
                        for r, p in self.files if r == ref and (not path or p.startswith(path + "/"))})
        if not below:
            return _not_found()
        return 200, {}, [self._content_entry(ref, f"{path}/{name}".strip("/"),
                                             "file" if (ref, f"{path}/{name}".strip("/")) in self.files else "dir")
                         for name in below]

    def _content_entry(self, ref: str, path: str, kind: str) -> dict[str, Any]:
        data = self.files.get((ref, path), b"")
        url = f"{self._repo_api()}/contents/{path}?ref={ref}"
        return {"type": kind, "name": path.rsplit("/", 1)[-1], "path": path,
                "sha": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(), "size": len(data) if kind == "file" else 0,
                "url": url, "html_url": f"{self.base}/{self.repo}/{'blob' if kind == 'file' else 'tree'}/{ref}/{path}",
                "git_url": None, "download_url": f"{self.base}/raw/{self.repo}/{ref}/{path}" if kind == "file" else None,
                "_links": {"self": url}}

    def _commit(self, ref: str, *, req: "_Handler", **_: Any) -> tuple[int, dict, Any]:
        sha = self.refs.get(ref) or (ref if ref in self.refs.values() else None)
        if sha is None:
            return 422, {}, {"message": f"No commit found for SHA: {ref}", "documentation_url": DOCS, "status": "422"}
        if "application/vnd.github.sha" in (req.headers.get("Accept") or ""):
            return 200, {"Content-Type": "application/vnd.github.sha; charset=utf-8"}, sha.encode()
        return 200, {}, {"sha": sha, "url": f"{self._repo_api()}/commits/{sha}",
                         "commit": {"message": f"commit {sha[:7]}", "tree": {"sha": "0" * 40}}}

    def _tags(self, *, query: dict[str, str], **_: Any) -> tuple[int, dict, Any]:
        tags = [{"name": name, "commit": {"sha": self.refs[name], "url": f"{self._repo_api()}/commits/{self.refs[name]}"},
                 "zipball_url": f"{self._repo_api()}/zipball/refs/tags/{name}",
                 "tarball_url": f"{self._repo_api()}/tarball/refs/tags/{name}", "node_id": f"REF_{name}"}
                for name in self.tag_names]
        return 200, {}, _page(tags, query)


def _page(items: list[Any], query: dict[str, str]) -> list[Any]:
    per_page = min(int(query.get("per_page", 30)), 100)
    page = int(query.get("page", 1))
    return items[(page - 1) * per_page: page * per_page]


def _not_found() -> tuple[int, dict, Any]:
    return 404, {}, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}


def _invalid(resource: str, field_name: str) -> tuple[int, dict, Any]:
    return 422, {}, {"message": "Validation Failed", "documentation_url": DOCS,
                     "errors": [{"resource": resource, "code": "already_exists", "field": field_name}],
                     "status": "422"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub

    def do_GET(self) -> None:
        self.fake.handle(self)

    do_POST = do_PATCH = do_DELETE = do_GET

    def reply(self, status: int, headers: dict[str, str], payload: Any) -> None:
        if isinstance(payload, (bytes, bytearray)):
            data = bytes(payload)
            headers.setdefault("Content-Type", "application/octet-stream")
        else:
            data = json.dumps(payload).encode()
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        headers.setdefault("X-GitHub-Request-Id", "FAKE:0001")
        headers.setdefault("X-RateLimit-Limit", "5000")
        headers.setdefault("X-RateLimit-Remaining", "4999")
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(0 if status == 204 else len(data)))
            self.end_headers()
            if status != 204:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client was killed mid-request
            pass

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub().start()
    yield fake
    fake.stop()
