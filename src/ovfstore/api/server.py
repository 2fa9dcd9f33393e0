"""Run one engine with its REST API until SIGINT or SIGTERM: what `ovfstore engine serve` and
`ovfstore up` share."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

import uvicorn

from ovfstore.api.app import create_app
from ovfstore.engine.runtime import Engine
from ovfstore.engine.users import ADMIN

log = logging.getLogger(__name__)

ADMIN_PASSWORD_ENV = "OVFSTORE_ADMIN_PASSWORD"


def prepare(engine: Engine, say: Callable[[str], None]) -> None:
    """Start the engine (schema, oVirt's defaults, updater) and make sure the administrator exists. A
    generated password is shown once, here, and never stored in clear."""
    engine.start()
    generated = engine.users.ensure_admin(os.environ.get(ADMIN_PASSWORD_ENV) or None)
    if generated is not None:
        say(f"created {ADMIN} with the generated password: {generated}")
        say(f"(shown only now; set {ADMIN_PASSWORD_ENV} before the first start to choose it)")


def serve(engine: Engine, host: str, port: int, on_listening: Callable[[int], None] | None = None) -> None:
    """Serve the API; `on_listening` gets the bound port (useful with port 0)."""
    app = create_app(engine)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    if on_listening is not None:
        started = server.startup

        async def startup(sockets: object = None) -> None:
            await started(sockets)  # type: ignore[arg-type]
            if server.servers:
                on_listening(int(server.servers[0].sockets[0].getsockname()[1]))

        server.startup = startup  # type: ignore[method-assign]
    # uvicorn stops on SIGTERM, then raises the signal again under the handler it found. The default one
    # would end the process on the spot, skipping every `finally` (the engine's stop, `ovfstore up`
    # stopping its agent): make SIGTERM unwind like Ctrl-C does.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit) if in_main else None
    try:
        server.run()
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        engine.stop()


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
