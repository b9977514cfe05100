"""`deadzone-build serve`: deadzone.db over MCP (stdio, or streamable HTTP), with deadzone's tools."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from deadzone_build import settings
from deadzone_build.errors import DeadzoneError

NAME = "serve"
HELP = ("Serve deadzone.db to coding agents over MCP with deadzone's tools, search_docs and search_libraries "
        "(stdio by default). Without --db and ./deadzone.db, the latest release's db of --repo is downloaded, "
        "verified and cached once ($DEADZONE_DATA_DIR, default: the platform data dir); "
        "DEADZONE_DB_OFFLINE=1 never touches the network.")
EXAMPLE = "deadzone-build serve --db deadzone.db      # then point the agent's MCP config at this command"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="PATH",
                        help="the db to serve, used as is (default: $DEADZONE_DB, else ./deadzone.db, else the "
                             "cached or downloaded release db)")
    parser.add_argument("--repo", metavar="OWNER/NAME",
                        help="GitHub repository whose release db to serve (default: $GITHUB_REPOSITORY)")
    parser.add_argument("--tag", default="latest",
                        help="release to serve when no local db is used (default: latest, checked on each start)")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                        help="stdio (default; the agent starts this command) or streamable HTTP at /mcp")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")


def _log(line: str) -> None:
    print(f"deadzone-build serve: {line}", file=sys.stderr, flush=True)


def use_model_cache() -> Path:
    """The model cache for this process: $DEADZONE_CACHE, else <data dir>/cache (an agent starts us in
    any directory). Set as $DEADZONE_CACHE so that every reader of the model files (the embedder and
    the budget's tokenizer alike) uses the same one."""
    from deadzone_build.serve.bootstrap import data_dir

    if not os.environ.get(settings.CACHE_ENV):
        os.environ[settings.CACHE_ENV] = str(data_dir() / "cache")
    return settings.cache_dir()


def run(args: argparse.Namespace) -> int:
    try:
        from deadzone_build.serve.bootstrap import resolve_db  # mcp and the model load only here
        from deadzone_build.serve.server import Backend, serve
    except ImportError as exc:
        raise DeadzoneError(f"`serve` needs the optional MCP packages ({exc.name} is not installed): "
                            "pip install 'deadzone-build[serve]'") from None

    cache = use_model_cache()

    def load_embedder():
        from deadzone_build.embed.embedder import Embedder, model_is_current

        if not model_is_current(cache):
            _log(f"building the embedding model once into {cache} (about a minute)")
        return Embedder(cache)

    backend = Backend(lambda: resolve_db(args.db, repo=args.repo, tag=args.tag, log=_log), load_embedder, _log)
    if args.transport == "http":
        _log(f"MCP over streamable HTTP at http://{args.host}:{args.port}/mcp")
    serve(backend, transport=args.transport, host=args.host, port=args.port)
    return 0
