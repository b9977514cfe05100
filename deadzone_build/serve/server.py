"""The MCP wiring of `deadzone-build serve`: deadzone's two tools on the official SDK's MCPServer.

Each tool returns structured content validated against its `outputSchema` (the pydantic models
below) plus a readable text rendering of the same result. A DeadzoneError (no db, an unknown
lib_id, an empty query...) becomes a tool error (`isError: true`) whose text says what to do.

The db is resolved (and, from a release, fetched), opened and its vectors loaded, and the model
loaded, once per process by `Backend`, in a background thread started with the server, so
`initialize` answers at once and the first search waits only for what is still loading.
"""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Callable

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, WithJsonSchema

from deadzone_build import __version__
from deadzone_build.db.search import SearchIndex, open_index
from deadzone_build.errors import DatabaseError, DeadzoneError
from deadzone_build.serve import tools
from deadzone_build.serve.bootstrap import ResolvedDb, incompatibility_hint

INSTRUCTIONS = (
    "Offline documentation of pinned library versions (deadzone.db). First resolve the library: "
    "search_libraries with its name gives lib_id candidates (and their versions). Then search_docs with "
    "that lib_id (and version, if you need one) and a query in words or API names. Without lib_id, "
    "search_docs searches every library."
)
SEARCH_DOCS = (
    "Search the documentation snippets of the indexed libraries (keyword and semantic search, fused). "
    "Call search_libraries first to get the lib_id (/org/project), then pass it here to search only that "
    "library; add version to search one version of it (version needs lib_id). Returns up to 10 snippets, "
    "best first, each with lib_id, version, title (its heading path), content, url and the versions that "
    "hold the same text; tokens caps the total content returned (default 5000, values under 1000 mean the "
    "default)."
)
SEARCH_LIBRARIES = (
    "Resolve a free-text library name (or what it does) into ranked lib_id candidates to pass to "
    "search_docs, one per indexed version, with doc_count (chunks indexed), match_score (cosine of the name "
    "to the library's description, higher is closer) and description. An empty name lists the libraries "
    "with the most docs. limit: default 10, at most 50."
)


def _optional(json_type: str, description: str) -> Any:
    """An optional argument shown as a plain typed property (as deadzone's), still accepting null."""
    return WithJsonSchema({"type": json_type, "description": description})


class Snippet(BaseModel):
    lib_id: str
    version: str = Field(description="the newest version holding this text ('' for an unversioned library)")
    title: str = Field(description="heading path, outermost first, joined with ' > '")
    content: str
    url: str = Field(description="the document the snippet comes from")
    heading_path: list[str]
    versions: list[str] = Field(description="every version of lib_id holding this same text, newest first")
    tokens: int = Field(description="word pieces of content (the budget's unit)")
    truncated: bool = Field(description="content was cut at a line or sentence end to fit the budget")
    score: float = Field(description="fused rank score (Reciprocal Rank Fusion), higher is better")


class SearchDocsOutput(BaseModel):
    snippets: list[Snippet]


class Library(BaseModel):
    lib_id: str
    version: str
    doc_count: int = Field(description="chunks indexed for this version")
    match_score: float = Field(description="cosine of the name to the library vector; 1.0 when name is empty")
    description: str
    chunk_count: int
    documents: int = Field(description="source documents fetched")
    tokens: int = Field(description="word pieces indexed")


class SearchLibrariesOutput(BaseModel):
    libraries: list[Library]


class Backend:
    """The db and the model, each loaded once per process; safe to use from the SDK's worker threads."""

    def __init__(self, resolve: Callable[[], ResolvedDb], load_embedder: Callable[[], Any],
                 log: Callable[[str], None]) -> None:
        self._resolve, self._load_embedder, self._log = resolve, load_embedder, log
        self._db: ResolvedDb | None = None
        self._problem: DeadzoneError | None = None
        self._embedder: tools.QueryEmbedder | None = None
        self._db_lock, self._model_lock = threading.Lock(), threading.Lock()

    def warm_up(self) -> None:
        """Resolve and open the db, then load the model (so the first call does not pay for them)."""
        try:
            self.index()
            self.embedder()
        except DeadzoneError as exc:
            self._log(f"not ready: {exc}")
        except Exception as exc:  # a background thread: say it, do not die silently
            self._log(f"warm-up failed: {exc!r}")

    def db_path(self) -> Path:
        with self._db_lock:
            if self._db is None:
                if self._problem is not None and not self._retry():
                    raise self._problem
                try:
                    self._db = self._resolve()
                    self._problem = None
                    self._log(f"serving {self._db.path}" + (f" (release {self._db.tag})" if self._db.tag else ""))
                except DeadzoneError as exc:
                    self._problem = exc
                    raise
            return self._db.path

    def _retry(self) -> bool:
        """A missing local file may appear later; a failed download is not retried on every call."""
        return isinstance(self._problem, DatabaseError)

    def index(self) -> SearchIndex:
        path = self.db_path()
        try:
            return open_index(path)  # cached per file; reloaded if the file is replaced
        except DatabaseError as exc:
            raise DatabaseError(incompatibility_hint(path, exc)) from None

    def embedder(self) -> tools.QueryEmbedder:
        with self._model_lock:
            if self._embedder is None:
                self._embedder = tools.QueryEmbedder(self._load_embedder())
            return self._embedder


def _text_result(text: str, structured: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def build_server(backend: Backend) -> MCPServer:
    """An MCPServer named "deadzone" with search_docs and search_libraries over `backend`."""

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[None]:
        # started here, once the transport holds stdout, so nothing loading can write on the wire
        threading.Thread(target=backend.warm_up, name="deadzone-warm-up", daemon=True).start()
        yield None

    server = MCPServer("deadzone", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan,
                       log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False, idempotent_hint=True)

    def search_docs(
        query: Annotated[str, Field(description="what to look for: words, a question or API names")],
        lib_id: Annotated[str | None, _optional("string", "library ID in /org/project format, from "
                                                "search_libraries (optional)")] = None,
        version: Annotated[str | None, _optional("string", "a version of lib_id (optional; needs lib_id)")] = None,
        tokens: Annotated[int | None, _optional("integer", "max tokens of content to return, min 1000, "
                                                "default 5000 (optional)")] = None,
    ) -> Annotated[CallToolResult, SearchDocsOutput]:
        try:
            result = tools.search_docs(backend.index(), backend.embedder(), query, lib_id, version, tokens)
        except DeadzoneError as exc:
            raise ToolError(str(exc)) from None
        return _text_result(tools.render_snippets(result), result)

    def search_libraries(
        name: Annotated[str | None, _optional("string", "free-text library name to resolve; empty returns "
                                              "top libs by doc count")] = None,
        limit: Annotated[int | None, _optional("integer", "max results, default 10, max 50")] = None,
    ) -> Annotated[CallToolResult, SearchLibrariesOutput]:
        try:
            result = tools.search_libraries(backend.index(), backend.embedder(), name, limit)
        except DeadzoneError as exc:
            raise ToolError(str(exc)) from None
        return _text_result(tools.render_libraries(result), result)

    server.add_tool(search_docs, name="search_docs", description=SEARCH_DOCS, annotations=read_only)
    server.add_tool(search_libraries, name="search_libraries", description=SEARCH_LIBRARIES, annotations=read_only)
    return server


def serve(backend: Backend, *, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run until the client disconnects (stdio) or the process is interrupted (http)."""
    server = build_server(backend)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
