"""deadzone-build: a content-addressed build of offline documentation indexes."""

__version__ = "0.1.0"
