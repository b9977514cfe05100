"""doit entry point: task generators only; the logic lives in deadzone_build.

    doit                          scrape every slot, then consolidate
    doit scrape:<slug>            one library version
    doit registry=PATH ...        another registry (or set DEADZONE_REGISTRY)
"""

from doit import get_var

from deadzone_build import tasks

DOIT_CONFIG = tasks.DOIT_CONFIG
_ctx = tasks.build_context(get_var("registry"))


def task_scrape():
    """Fetch, chunk and embed one library version into artifacts/<slug>/."""
    yield from tasks.scrape_tasks(_ctx)
