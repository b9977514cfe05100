"""Kind `scrape-via-agent`: HTML documentation sites, deterministic, with or without an LLM endpoint.

    route.py     which route builds a slot (deterministic | endpoint model + prompt version); key inputs
    extract.py   HTML → markdown of the main content, `<pre>` verbatim (selectolax + html-to-markdown)
    sections.py  markdown → pieces within the endpoint's input cap, split by section, nothing lost
    endpoint.py  the OpenAI-compatible chat client (deadzone's contract, ping, retries, deadline)
    verify.py    the code-block check of an answer (and restoring the page's exact code bytes)
    answers.py   the content-addressed answer cache under cache/agent-answers/
    source.py    collect(): fetch, content types, extraction, endpoint per section, fallbacks, reports

`collect` is imported lazily so that computing keys (route.py) never loads the parsers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not at run time: keys import agent.route and must stay light
    from deadzone_build.registry.load import Slot
    from deadzone_build.sources.base import SourceContext, SourceResult


def collect(slot: Slot, context: SourceContext) -> SourceResult:
    from deadzone_build.sources.agent.source import collect as collect_pages

    return collect_pages(slot, context)
