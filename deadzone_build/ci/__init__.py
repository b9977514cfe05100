"""CI glue: the matrix plan, the run summary, the `actions/cache` listing."""
