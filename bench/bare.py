"""The read ceiling: a bare aiohttp JSON handler (``python -m bench.bare PORT``), nothing else."""

from __future__ import annotations

import sys

from aiohttp import web


async def _hello(_: web.Request) -> web.Response:
    return web.json_response({"id": "task_bench", "status": "succeeded"})


def main() -> int:
    app = web.Application()
    app.router.add_get("/", _hello)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
