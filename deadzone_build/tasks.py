"""doit task generators. `dodo.py` only re-exports these; the work is in the library.

Task state lives in the build products themselves (`ArtifactIsCurrent`, `ModelIsCurrent`,
`db.read.DbIsCurrent`), not in doit's dep file: a fresh CI runner with an `actions/cache`-restored artifact
and no `.doit.db` skips it, and a killed run forgets nothing it finished. Heavy modules (onnxruntime,
httpx) are imported inside actions so a no-op `doit` stays fast.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NoReturn

from deadzone_build import settings
from deadzone_build.console import serialize_standard_streams
from deadzone_build.pipeline.artifact import ArtifactIsCurrent
from deadzone_build.db.read import DbIsCurrent
from deadzone_build.errors import DeadzoneError
from deadzone_build.registry.keys import SlotKey, keyed
from deadzone_build.registry.load import Slot, load_registry, select_slots
from deadzone_build.registry.lock import lock_path_for

DOIT_CONFIG: dict[str, Any] = {
    "backend": "sqlite3",  # dbm differs between Python builds and breaks with two processes
    "dep_file": ".doit.db",
    "default_tasks": ["consolidate"],
    "verbosity": 2,
}


def doit_config() -> dict[str, Any]:
    """DOIT_CONFIG for dodo.py, with stdout/stderr made safe for `doit -n N -P thread` (console.py)
    and Ctrl-C reported in one line."""
    _install_interrupt_hook()
    return {**DOIT_CONFIG, "outfile": serialize_standard_streams()}


INTERRUPTED = "doit: interrupted; nothing half-written was kept (the previous state is intact)."


def _install_interrupt_hook() -> None:
    """doit lets a Ctrl-C inside a task escape as a 55-line KeyboardInterrupt traceback. The
    interpreter prints an uncaught exception through sys.excepthook and then still dies of SIGINT
    (the shell sees 130), so replacing the print is enough: one line, the same exit status."""
    previous = sys.excepthook
    if getattr(previous, "deadzone_interrupt_hook", False):
        return

    def hook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            say(INTERRUPTED, err=True)
        else:
            previous(exc_type, exc, tb)

    hook.deadzone_interrupt_hook = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def doit_task(**fields: Any) -> dict[str, Any]:
    """A task dict with the fields every task here shares: live output, never captured.

    doit's output capture swaps `sys.stdout` for a per-task object while the action runs. Under
    `-P thread` another worker's `print()` may be writing to the object being swapped out, and
    CPython's `print` holds only a borrowed reference to it: use after free, SIGSEGV (about one run
    in 40 with two slots, one in two with chatty tasks). Uncaptured, `sys.stdout` never changes."""
    return {"verbosity": 2, "io": {"capture": False}, **fields}


def say(text: str, *, err: bool = False) -> None:
    """One line to stdout (or stderr) in one write, so lines of parallel tasks never interleave."""
    (sys.stderr if err else sys.stdout).write(text + "\n")


@dataclass(frozen=True)
class BuildContext:
    registry: Path
    artifacts: Path
    cache: Path
    db: Path
    all_slots: list[Slot]  # the whole registry (its digest goes into the db)
    slots: list[Slot]  # the slots this run builds (all, or those of lib=)
    lib: str | None
    lock_stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the lock file when the registry was read

    def current_slots(self) -> tuple[list[Slot], list[Slot]]:
        """(all slots, this run's slots) as the registry and its lock say *now*: scrapes of this run
        may have locked slots on first use, which changes their keys. Read again only then."""
        if _stamp(lock_path_for(self.registry)) == self.lock_stamp:
            return self.all_slots, self.slots
        all_slots = load_registry(self.registry)
        return all_slots, select_slots(all_slots, self.lib)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def build_context(registry_var: str | None, lib_var: str | None = None) -> BuildContext:
    """Read the registry once per doit run; on a bad registry, print the error and exit 1."""
    registry = settings.registry_path(registry_var)
    stamp = _stamp(lock_path_for(registry))  # before reading: a lock written meanwhile counts as changed
    try:
        all_slots = load_registry(registry)
        slots = select_slots(all_slots, lib_var or None)
    except DeadzoneError as exc:
        _abort_load(str(exc))
    return BuildContext(registry=registry, artifacts=settings.artifacts_dir(), cache=settings.cache_dir(),
                        db=settings.db_path(), all_slots=all_slots, slots=slots, lib=lib_var or None,
                        lock_stamp=stamp)


def _abort_load(message: str) -> NoReturn:
    """End a doit run while dodo.py loads: the message, no traceback, exit 1."""
    say(f"doit: error: {message}", err=True)
    raise SystemExit(1)


def _report_failure(exc: DeadzoneError) -> bool:
    say(f"error: {exc}", err=True)
    return False  # doit marks the task failed without a traceback


# ── embedder ─────────────────────────────────────────────────────────────────


class ModelIsCurrent:
    """doit uptodate: the cached ONNX model exists and its digest verifies."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    def __call__(self, task: Any = None, values: Any = None) -> bool:
        from deadzone_build.embed.embedder import model_is_current

        return model_is_current(self.cache)

    def __repr__(self) -> str:
        return f"ModelIsCurrent({str(self.cache)!r}): the pinned ONNX model under cache/embedder/<pin>/ verifies"


def _build_model(cache: Path) -> bool:
    from deadzone_build.embed.embedder import ensure_model

    try:
        path = ensure_model(cache, progress=lambda msg: say(f"embedder: {msg}", err=True))
    except DeadzoneError as exc:
        return _report_failure(exc)
    say(f"embedder: ready at {path}")
    return True


def embedder_task(ctx: BuildContext) -> dict[str, Any]:
    return doit_task(
        basename="embedder",
        doc="build the pinned ONNX model into cache/embedder/<pin>/ (scrapes also build it on first use)",
        actions=[(_build_model, (ctx.cache,))],
        uptodate=[ModelIsCurrent(ctx.cache)],
    )


# ── scrape ───────────────────────────────────────────────────────────────────


def _scrape(slot: Slot, key: SlotKey, artifacts: Path, cache: Path, lock_path: Path) -> bool:
    from deadzone_build.progress import SlotProgress
    from deadzone_build.pipeline.scrape import scrape_slot

    progress = SlotProgress(slot.label)
    try:
        outcome = scrape_slot(slot, artifacts_dir=artifacts, cache_dir=cache, progress=progress, key=key,
                              lock_path=lock_path)
    except DeadzoneError as exc:
        return _report_failure(exc)
    finally:
        progress.close()
    from deadzone_build.sources.fetch import describe_drop

    for note in outcome.notes:
        say(f"note: {note}", err=True)
    say(outcome.line())
    for report in outcome.dropped:
        say(f"  dropped {describe_drop(report)}")
    return True


def scrape_tasks(ctx: BuildContext) -> Iterator[dict[str, Any]]:
    """One `scrape:<slug>` subtask per slot, in registry order."""
    yield {"basename": "scrape", "name": None, "doc": "scrape every slot (doit scrape:<slug> for one)"}
    for slot in ctx.slots:
        key = keyed(slot)  # once per slot: the up-to-date check and the scrape share it
        yield doit_task(
            basename="scrape",
            name=slot.slug,
            doc=f"fetch, chunk and embed {slot.label} into {ctx.artifacts / slot.slug}",
            actions=[(_scrape, (slot, key, ctx.artifacts, ctx.cache, lock_path_for(ctx.registry)))],
            uptodate=[ArtifactIsCurrent(ctx.artifacts / slot.slug, key.key)],
            # No `setup=["embedder"]`: doit releases the tasks waiting on a setup task from a set, so
            # they ran in a different order each run. The model is built on first use instead, once
            # per process (`shared_embedder` holds a lock); `doit embedder` still builds it ahead.
        )


# ── consolidate ──────────────────────────────────────────────────────────────


def _consolidate(ctx: BuildContext, max_missing: int) -> bool:
    from deadzone_build.db.consolidate import consolidate
    from deadzone_build.registry.keys import registry_digest

    try:
        all_slots, slots = ctx.current_slots()
        result = consolidate(slots=slots, artifacts_dir=ctx.artifacts, db_path=ctx.db,
                             registry_digest=registry_digest(all_slots), lib_filter=ctx.lib or "",
                             max_missing=max_missing, log=say)
    except DeadzoneError as exc:
        return _report_failure(exc)
    say(result.line())
    return True


def _max_missing(text: str) -> int:
    """The doit variable max_missing=N; a bad value ends the run with a message, not a traceback."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        _abort_load(f"max_missing={text!r} is not a count of slots; use e.g. `doit max_missing=2`.")
    return value


class _DbIsCurrentNow:
    """DbIsCurrent over the slots as they are when doit asks (after this run's scrapes), not at load."""

    __signature__ = inspect.Signature()  # see ArtifactIsCurrent

    def __init__(self, ctx: BuildContext, max_missing: int) -> None:
        self.ctx, self.max_missing = ctx, max_missing

    def _check(self) -> DbIsCurrent:
        return DbIsCurrent(self.ctx.db, self.ctx.current_slots()[1], self.ctx.artifacts, self.max_missing)

    def __call__(self, *_: Any) -> bool:
        return self._check()()

    def __repr__(self) -> str:
        return repr(self._check())


def consolidate_task(ctx: BuildContext, max_missing_var: str) -> dict[str, Any]:
    max_missing = _max_missing(max_missing_var)
    return doit_task(
        basename="consolidate",
        doc="merge every current artifact into deadzone.db (+ .sha256, manifest.json)",
        actions=[(_consolidate, (ctx, max_missing))],
        task_dep=["scrape"],
        uptodate=[_DbIsCurrentNow(ctx, max_missing)],
        targets=[str(ctx.db)],
    )


# ── release ──────────────────────────────────────────────────────────────────


def _release(ctx: BuildContext, tag: str, repo: str, draft: bool, dry_run: bool, allow_missing: bool,
             allow_incomplete: bool) -> bool:
    from deadzone_build.publish.release import release_db
    from deadzone_build.publish.report import summary

    if not tag:
        return _report_failure(DeadzoneError("release needs a tag: run `doit release --tag v2026.11.25`."))
    try:
        outcome = release_db(tag=tag, repo=repo or None, db=ctx.db, registry=ctx.registry, draft=draft,
                             dry_run=dry_run, allow_missing=allow_missing, allow_incomplete=allow_incomplete,
                             log=say)
    except DeadzoneError as exc:
        return _report_failure(exc)
    say(summary(outcome))  # the same words as `deadzone-build release`
    return True


def release_task(ctx: BuildContext) -> dict[str, Any]:
    return doit_task(
        basename="release",
        doc="publish deadzone.db to the GitHub Release TAG (doit release --tag TAG [--repo OWNER/NAME] [--draft] "
            "[--dry-run] [--allow-missing] [--allow-incomplete])",
        actions=[(_release, (ctx,))],
        params=[
            {"name": "tag", "long": "tag", "default": "", "help": "release tag, e.g. v2026.11.25"},
            {"name": "repo", "long": "repo", "default": "",
             "help": "GitHub repository OWNER/NAME (default: $GITHUB_REPOSITORY)"},
            {"name": "draft", "long": "draft", "type": bool, "default": False, "help": "create the release as a draft"},
            {"name": "dry_run", "long": "dry-run", "type": bool, "default": False,
             "help": "run every gate, upload nothing"},
            {"name": "allow_missing", "long": "allow-missing", "type": bool, "default": False,
             "help": "publish even if some slots are missing"},
            {"name": "allow_incomplete", "long": "allow-incomplete", "type": bool, "default": False,
             "help": "publish even if some slots are incomplete (a URL failed transiently)"},
        ],
        task_dep=["consolidate"],
        uptodate=[False],
    )
