"""`deadzone-build serve`: deadzone.db over MCP, with deadzone's two tools.

    tools.py      search_docs / search_libraries as plain functions over an open index (no MCP)
    budget.py     the token budget: word pieces counted with the model's tokenizer, cuts at boundaries
    bootstrap.py  which db to serve: --db, $DEADZONE_DB, ./deadzone.db, or a cached/fetched release
    server.py     the MCP wiring (official `mcp` SDK, MCPServer), stdio or streamable HTTP
"""
