"""The CI plan: which slots need a runner, and which are already built somewhere.

Every slot's artifact can come from three places, cheapest first:

    release   its key is in the released deadzone.db: `deadzone-build pull` rebuilds it, no job
    cache     its key is in `actions/cache`: a matrix job restores it (no scrape) and uploads it
    scrape    it exists nowhere: a matrix job scrapes it and saves it to `actions/cache`

A cached slot still needs a job because only the `actions/cache` action can download a cache
entry, and a job has a fixed list of steps. The jobs are cut into shards of at most 256 (GitHub's
matrix limit); the workflow runs one matrix per shard and skips the empty ones (an empty matrix is
an error on GitHub, not a skip).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterable

from deadzone_build.db.schema import META_PIN_ID, META_SCHEMA_VERSION, SCHEMA_VERSION, read_meta
from deadzone_build.errors import DatabaseError, PlanError, ReleaseAssetMissing
from deadzone_build.registry.keys import slot_key
from deadzone_build.embed.pin import pin_id
from deadzone_build.registry.load import Slot

MATRIX_LIMIT = 256  # jobs per matrix, GitHub's limit
SOURCES = ("release", "cache", "scrape")
SHARD_FIELDS = ("slug", "key", "lib_id", "version")


@dataclass(frozen=True)
class Plan:
    """Every slot with its source, the counts, and the matrix shards (registry order)."""

    slots: list[dict[str, str]]
    counts: dict[str, int]
    shards: list[list[dict[str, str]]] = field(default_factory=list)

    @property
    def has_work(self) -> bool:
        return bool(self.shards)

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "has_work": self.has_work, "slots": self.slots,
                "shards": self.shards}


def make_plan(slots: Iterable[Slot], *, base_db_keys: set[str], cached_keys: set[str],
              shard_size: int = MATRIX_LIMIT) -> Plan:
    """Decide each slot's source and shard the slots that need a job."""
    if not 1 <= shard_size <= MATRIX_LIMIT:
        raise PlanError(f"shard size {shard_size} is outside 1..{MATRIX_LIMIT} (GitHub runs at most "
                        f"{MATRIX_LIMIT} jobs per matrix). Pick a size in that range.")
    rows = []
    for slot in slots:
        key = slot_key(slot)
        source = "release" if key in base_db_keys else "cache" if key in cached_keys else "scrape"
        rows.append({"lib_id": slot.lib_id, "version": slot.version, "slug": slot.slug, "key": key,
                     "source": source})
    jobs = [{name: row[name] for name in SHARD_FIELDS} for row in rows if row["source"] != "release"]
    shards = [jobs[i:i + shard_size] for i in range(0, len(jobs), shard_size)]
    counts = {
        "total": len(rows),
        "reused": sum(r["source"] == "release" for r in rows),
        "cached": sum(r["source"] == "cache" for r in rows),
        "to_scrape": sum(r["source"] == "scrape" for r in rows),
    }
    return Plan(slots=rows, counts=counts, shards=shards)


def keys_in_db(db_path: str | Path) -> set[str]:
    """The slot keys a deadzone.db holds: those slots need no job, `pull` restores them."""
    path = Path(db_path)
    if not path.is_file():
        raise PlanError(f"{path}: base db not found. Download it with `deadzone-build fetch-release "
                        f"--out {path}`, or drop --base-db to plan without it.")
    from deadzone_build.db.read import library_keys  # late: it imports numpy, which `list` never needs

    try:
        return library_keys(path)
    except DatabaseError as exc:
        raise PlanError(f"{exc} Delete it and fetch the release again, or drop --base-db.") from None


def reusable_keys(db_path: str | Path, log: Callable[[str], None] = lambda line: None) -> set[str]:
    """`keys_in_db`, or none when the db was built for another schema or embedder pin: `pull`
    refuses such a db, so planning its keys as reused would fail the consolidate job."""
    path = Path(db_path)
    keys = keys_in_db(path)  # first: a missing or unreadable file is an error, not "nothing to reuse"
    from deadzone_build.db.read import compatibility_problem

    meta = read_meta(path)
    if compatibility_problem(meta):
        log(f"{path}: built for schema {meta.get(META_SCHEMA_VERSION)} and embedder pin {meta.get(META_PIN_ID)}, "
            f"this deadzone-build uses schema {SCHEMA_VERSION} and pin {pin_id()}: nothing in it is reused")
        return set()
    from deadzone_build.db.read import incomplete_keys

    return keys - incomplete_keys(path)  # released with --allow-incomplete: scraped again, never reused



def cached_keys_from_file(path: str | Path) -> set[str]:
    """Cache keys from a file: one per line (`#` comments and blank lines ignored), a JSON
    list of keys, or a saved `GET /repos/{o}/{r}/actions/caches` answer."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"{path}: cannot read the cached-keys file ({exc.strerror}). "
                        "Pass an existing file to --cached-keys.") from None
    if text.lstrip()[:1] in ("[", "{"):
        return _keys_from_json(text, path)
    lines = (line.strip() for line in text.splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def _keys_from_json(text: str, path: Path) -> set[str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}). Write one key per line, "
                        "a JSON list of keys, or the API's {\"actions_caches\": [...]} answer.") from None
    items = data.get("actions_caches") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise PlanError(f"{path}: expected a JSON list of keys or an object with `actions_caches`. "
                        "Fix the file.")
    keys = {item.get("key") if isinstance(item, dict) else item for item in items}
    if not all(isinstance(k, str) and k for k in keys):
        raise PlanError(f"{path}: every cache entry must be a non-empty key string. Fix the file.")
    return keys  # type: ignore[return-value]


def cached_keys_from_github(repo: str, prefix: str = "deadzone-", refs: Collection[str] = ()) -> set[str]:
    """Keys present in the repository's `actions/cache` (token and API base from the env).

    With `refs`, only entries saved on those git refs count: a run can restore caches of its own
    branch and of the default branch, not those of other branches or pull requests."""
    from deadzone_build.ci.actions_cache import list_caches  # the GitHub client only when asked

    return {entry.key for entry in list_caches(repo, key_prefix=prefix) if not refs or entry.ref in refs}


def fetch_base_db(out: str | Path, *, tag: str = "latest", repo: str | None = None,
                  log: Callable[[str], None] = lambda line: None) -> Path | None:
    """Download the released db of `tag` to `out` (verified); None when there is none to download.

    None means "no such release" (the first run of a repository) or "the release lacks its db"
    (a publish interrupted between deleting the old assets and renaming the new ones, which the
    next release run repairs): every slot is planned. Any other failure raises, so an outage or a
    db that does not verify never silently turns into a full rebuild."""
    from deadzone_build.publish.github import GitHubClient
    from deadzone_build.publish.release import fetch_release

    client = GitHubClient.from_settings(repo, log=log)
    release = client.latest_release() if tag == "latest" else client.release_by_tag(tag)
    if release is None:
        log(f"{client.repo} has no {'published release' if tag == 'latest' else f'release {tag}'}: "
            "every slot is planned")
        return None
    try:
        return fetch_release(tag=str(release.get("tag_name") or tag), repo=client.repo, out=Path(out), log=log)
    except ReleaseAssetMissing as exc:
        log(f"warning: {exc} Every slot is planned; the next release run repairs the release.")
        return None


def matrix_json(shard: list[dict[str, str]]) -> str:
    """One shard as a `strategy.matrix` value: {"include": [...]}, compact, one line."""
    return json.dumps({"include": shard}, separators=(",", ":"), ensure_ascii=False)


def github_outputs(plan: Plan, shard_jobs: int, *, base_db: bool = False) -> dict[str, str]:
    """The step outputs the workflow wires: has_work, base_db, counts, shard_<i>, shard_<i>_size."""
    if len(plan.shards) > shard_jobs:
        jobs = sum(len(s) for s in plan.shards)
        raise PlanError(
            f"{jobs} slots need a job but the workflow runs {shard_jobs} shard jobs of at most "
            f"{MATRIX_LIMIT} ({shard_jobs * MATRIX_LIMIT} slots). Add a scrape-<n> job to "
            "scrape-pack.yml and raise its --shard-jobs to match.")
    outputs = {"has_work": "true" if plan.has_work else "false", "base_db": "true" if base_db else "false"}
    outputs.update({name: str(value) for name, value in plan.counts.items()})
    for index in range(shard_jobs):
        shard = plan.shards[index] if index < len(plan.shards) else []
        outputs[f"shard_{index}"] = matrix_json(shard)
        outputs[f"shard_{index}_size"] = str(len(shard))
    return outputs
