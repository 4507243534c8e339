"""A minimal app served by ``servicekit.runner.serve``, as a process: ``python -m tests.support.tiny_service PORT``."""

import logging
import sys

from fastapi import FastAPI, Request

from servicekit.runner import serve

app = FastAPI()


@app.post("/echo")
async def echo(request: Request) -> dict[str, int]:
    return {"received": len(await request.body())}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)  # as the services do: access lines go to stderr
    sys.exit(serve(app, host="127.0.0.1", port=int(sys.argv[1]), shutdown_timeout_seconds=5, read_timeout_seconds=1.0))
