"""The public HTTP API (aiohttp): routes, problem+json errors, JSON validation, operations."""
