"""The words a release run ends with, shared by `deadzone-build release` and `doit release`."""

from __future__ import annotations

from deadzone_build.publish.release import ReleaseOutcome

__all__ = ["summary"]


def summary(outcome: ReleaseOutcome) -> str:
    files = "\n".join(f"  {a['name']}  {a['size']} bytes  sha256 {a['sha256']}" for a in outcome.assets)
    if outcome.dry_run:
        where = outcome.repo or "(no --repo / GITHUB_REPOSITORY set)"
        return f"dry run: checks passed; would publish to {where} release {outcome.tag}:\n{files}"
    state = "draft" if outcome.draft else "published"
    if not outcome.changed:
        head = f"release {outcome.tag} of {outcome.repo} already up to date ({state}); nothing uploaded"
    else:
        head = (f"release {outcome.tag} of {outcome.repo} ({state}): uploaded {_names(outcome.uploaded)}, "
                f"replaced {_names(outcome.replaced)}, unchanged {_names(outcome.unchanged)}")
        if outcome.cleaned:
            head += f", cleaned up {_names(outcome.cleaned)}"
    return f"{head}\n{files}\n{outcome.html_url or ''}".rstrip()


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "none"
