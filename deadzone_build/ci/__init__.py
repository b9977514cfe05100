"""CI glue: the matrix plan, the run summary, the `actions/cache` listing.

`actions_cache` (`list_caches`, `CacheEntry`) is not imported here: it loads the GitHub client,
which only a plan with `--github` needs.
"""

from deadzone_build.ci.plan import Plan, github_outputs, make_plan
from deadzone_build.ci.summary import summary_json, summary_markdown

__all__ = ["Plan", "github_outputs", "make_plan", "summary_json", "summary_markdown"]
