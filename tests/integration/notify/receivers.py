"""Real servers on loopback for notify's tests: an SMTP server (aiosmtpd) and a chat webhook receiver (HTTP)."""

import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.ports import free_port


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage


@dataclass
class MailSink:
    """What the SMTP server accepted; ``refuse`` makes it answer RCPT with 550 for those addresses."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.received.append(Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), parsed))
        return "250 Message accepted"

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)


@dataclass(frozen=True)
class SmtpServer:
    port: int
    sink: MailSink
    ca_file: Path | None = None


class _Authenticator:
    def __init__(self, sink: MailSink, username: str, password: str) -> None:
        self._sink, self._username, self._password = sink, username, password

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            self._username.encode(),
            self._password.encode(),
        )
        if ok:
            self._sink.logins.append(self._username)
        return AuthResult(success=ok)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "smtp.crt", folder / "smtp.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@contextmanager
def smtp_server(
    tls_folder: Path | None = None, login: tuple[str, str] | None = None, sink: MailSink | None = None
) -> Iterator[SmtpServer]:
    """A real SMTP server on a free loopback port; with ``tls_folder``, STARTTLS with a fresh self-signed cert."""
    sink = sink or MailSink()
    port = free_port()
    options: dict[str, Any] = {}
    ca_file = None
    if tls_folder is not None:
        cert, key = self_signed_certificate(tls_folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        options |= {"tls_context": context, "require_starttls": True}
        ca_file = cert
    if login is not None:
        options |= {"authenticator": _Authenticator(sink, *login), "auth_required": True}
    controller = Controller(sink, hostname="127.0.0.1", port=port, server_hostname="127.0.0.1", **options)
    controller.start()
    try:
        yield SmtpServer(port, sink, ca_file)
    finally:
        controller.stop()


@dataclass(frozen=True)
class Posted:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class WebhookReceiver:
    """Answers each path with a set status (200 by default) and records every POST."""

    port: int
    answers: dict[str, tuple[int, str]]
    posted: list[Posted]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Posted]:
        return [post for post in self.posted if post.path == path]


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    posted: list[Posted] = []
    answers: dict[str, tuple[int, str]] = {}
    redirect_to: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            posted.append(Posted(self.path, dict(self.headers.items()), body))
            status, text = answers.get(self.path, (200, "ok"))
            self.send_response(status)
            if status in (301, 302, 307, 308):
                self.send_header("Location", redirect_to[0])
            encoded = text.encode()
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    redirect_to.append(f"http://127.0.0.1:{server.server_address[1]}/redirected")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield WebhookReceiver(server.server_address[1], answers, posted)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
