"""doit entry point: task generators only; the logic lives in deadzone_build (see tasks.py).

    doit                              scrape every slot, then consolidate into deadzone.db
    doit scrape:<slug>                one library version
    doit consolidate                  deadzone.db from the current artifacts
    doit release --tag TAG            publish deadzone.db to a GitHub Release
    doit registry=PATH ...            another registry (or set DEADZONE_REGISTRY)
    doit lib=/org/project ...         only that library's slots
    doit --single max_missing=N consolidate   tolerate N missing slots (default 0)
    doit -n 2 -P thread scrape        two scrapes at a time (task output is always live, -v aside)
"""

from doit import get_var

from deadzone_build import tasks

DOIT_CONFIG = tasks.doit_config()
_ctx = tasks.build_context(get_var("registry"), get_var("lib"))


def task_embedder():
    """Build the pinned ONNX embedding model (a setup of every scrape task)."""
    return tasks.embedder_task(_ctx)


def task_scrape():
    """Fetch, chunk and embed one library version into artifacts/<slug>/."""
    yield from tasks.scrape_tasks(_ctx)


def task_consolidate():
    """Merge the current artifacts into deadzone.db (the default task)."""
    return tasks.consolidate_task(_ctx, get_var("max_missing", "0"))


def task_release():
    """Publish deadzone.db, its .sha256 and manifest.json to a GitHub Release."""
    return tasks.release_task(_ctx)
