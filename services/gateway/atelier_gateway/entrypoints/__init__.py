"""Gateway entrypoints: the aiohttp application and the ``atelier-gateway`` CLI."""
