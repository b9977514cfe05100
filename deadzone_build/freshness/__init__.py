"""Upstream freshness: the sources lock (`refresh`), its use while scraping (`verify`), and
`outdated` (newer upstream tags than the registry pins)."""
