"""Publish stage: the GitHub client and the release (upload, fetch) of `deadzone.db`."""
