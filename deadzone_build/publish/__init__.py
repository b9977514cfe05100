"""Publish stage: the one GitHub client and the release (upload, fetch) of `deadzone.db`."""

from deadzone_build.publish.github import GitHubClient, RetryPolicy
from deadzone_build.publish.release import ReleaseOutcome, fetch_release, release_db
from deadzone_build.publish.report import summary

__all__ = ["GitHubClient", "ReleaseOutcome", "RetryPolicy", "fetch_release", "release_db", "summary"]
