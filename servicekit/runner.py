"""Runs a service's ASGI app under uvicorn: slow clients cut off, exit status 0 after a clean SIGTERM shutdown."""

import asyncio
import contextlib
import gc
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from servicekit.service_settings import ServiceSettings

log = logging.getLogger(__name__)

STARTUP_FAILURE = 3
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 16\r\n"
    b"connection: close\r\nx-content-type-options: nosniff\r\n\r\nrequest timeout\n"
)
# The client's side of a request is over: nothing more to wait for from it.
_RECEIVED = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)


class H11WithReadTimeout(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline for the client to send a whole request (headers and body).

    uvicorn itself only times out idle keep-alive connections; a client that trickles its headers or body a byte at
    a time would otherwise hold a connection (and, for a body, a request handler) for as long as it likes.
    """

    read_timeout_seconds = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state in _RECEIVED:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._read_deadline = self.loop.call_later(self.read_timeout_seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _too_slow(self) -> None:
        self._read_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            with contextlib.suppress(Exception):
                self.transport.write(REQUEST_TIMEOUT)
        log.info("closed a connection whose request did not arrive within %.0fs", self.read_timeout_seconds)
        self.transport.close()


class _WithoutQueryString(logging.Filter):
    """Access log lines name the path only: a query string can carry a token or a person's data."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def _protocol_with_timeout(seconds: float) -> type[H11WithReadTimeout]:
    return type("H11WithReadTimeout", (H11WithReadTimeout,), {"read_timeout_seconds": seconds})


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn re-raises SIGTERM after a graceful shutdown, so the process ends 'killed by SIGTERM' and
        supervisors read a failure; here a clean shutdown on SIGTERM exits 0 (SIGINT keeps its usual ending)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
        if signal.SIGINT in self._captured_signals:
            signal.raise_signal(signal.SIGINT)


def serve(app: Any, *, host: str, port: int, shutdown_timeout_seconds: float, read_timeout_seconds: float) -> int:
    """Serve until SIGTERM or SIGINT; the exit status for ``sys.exit`` (0 after a clean shutdown)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        timeout_graceful_shutdown=max(1, round(shutdown_timeout_seconds)),
        http=_protocol_with_timeout(read_timeout_seconds),
    )
    logging.getLogger("uvicorn.access").addFilter(_WithoutQueryString())
    server = _Server(config)
    server.run()
    return 0 if server.started else STARTUP_FAILURE


def configure_logging() -> None:
    """One line per record on stderr, the same in every service."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# Net allocations before the collector looks at the youngest objects (CPython's default: 700). About ten of ingest's
# batches' worth: by then most of a batch's objects were freed by reference counting, rather than promoted to older
# generations while still in use.
YOUNG_OBJECTS_BEFORE_COLLECTION = 20_000


def settle_heap() -> None:
    """Keep the cyclic garbage collector off what lives as long as the process, and off a batch in progress.

    With CPython's defaults, ingest's batches were collected two or three times each while their objects were alive,
    which promoted them towards the oldest generation; so every few thousand records a full collection walked the
    90,000 objects created at start-up (modules, the app, settings) again, 50 ms each. Measured in ingest: 245 ms of
    collections per 20,000 records, two thirds in full ones; 45 ms with the start-up objects frozen out of every
    collection and the higher threshold. Cycles are still collected, later.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS_BEFORE_COLLECTION, *gc.get_threshold()[1:])


def serve_service(app: Any, settings: ServiceSettings) -> int:
    """``serve`` on the address and with the time limits a service's settings name, the start-up heap settled."""
    settle_heap()
    return serve(
        app,
        host=settings.http_host,
        port=settings.http_port,
        shutdown_timeout_seconds=settings.shutdown_timeout_seconds,
        read_timeout_seconds=settings.http_read_timeout_seconds,
    )
