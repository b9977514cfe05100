"""Pipeline stage: clean (markdown, RST) → chunk → scrape orchestration → artifact on disk.

`scrape.scrape_slot` is the unit of work of `doit scrape:<slug>`; `artifact` owns
`artifacts/<slug>/`; `explain` says why an artifact is (not) current.
"""
