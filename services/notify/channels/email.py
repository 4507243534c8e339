"""Email over SMTP: STARTTLS or implicit TLS, optional authentication, a plain-text part and an HTML part.

``smtplib`` runs in a worker thread (it blocks); one connection per message keeps failures independent. The
Message-ID is derived from the delivery key, so a message sent again inside the crash window (docs/notify.md) has
the same Message-ID, which many mail systems use to drop the copy.
"""

import asyncio
import hashlib
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from services.notify.channels.failures import DeliveryError
from services.notify.domain.rendering import Message

PERMANENT_CODES = range(500, 600)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: Literal["starttls", "tls", "none"]
    sender: str
    username: str | None = None
    password: SecretStr | None = None
    timeout_seconds: float = 15.0
    ca_file: Path | None = None


def compose(config: SmtpConfig, to: str, message: Message, *, key: str, now: datetime) -> EmailMessage:
    email = EmailMessage()
    email["Subject"] = message.subject
    email["From"] = config.sender
    email["To"] = to
    email["Date"] = format_datetime(now)
    domain = config.sender.rpartition("@")[2]
    email["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"
    # RFC 3834: automatic mail; auto-responders should not answer it.
    email["Auto-Submitted"] = "auto-generated"
    email["X-Lessons-Notice"] = key
    email.set_content(message.text)
    email.add_alternative(message.html, subtype="html")
    return email


def _refusal(code: int, text: bytes | str, what: str) -> DeliveryError:
    said = text.decode(errors="replace") if isinstance(text, bytes) else text
    return DeliveryError(
        f"SMTP {what} refused: {code} {' '.join(said.split())[:200]}", permanent=code in PERMANENT_CODES
    )


class EmailSender:
    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    async def send(self, to: str, message: Message, *, key: str, now: datetime) -> None:
        email = compose(self._config, to, message, key=key, now=now)
        await asyncio.to_thread(self._send, email, to)

    def _send(self, email: EmailMessage, to: str) -> None:
        config = self._config
        try:
            self._deliver(config, email, to)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (550, b"recipient refused"))
            raise _refusal(code, text, "recipient") from None
        except smtplib.SMTPSenderRefused as exc:
            raise _refusal(exc.smtp_code, exc.smtp_error, "sender") from None
        except smtplib.SMTPDataError as exc:
            raise _refusal(exc.smtp_code, exc.smtp_error, "message") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP authentication failed ({exc.smtp_code})", permanent=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"SMTP server unreachable or failing: {type(exc).__name__}: {exc}"[:300], permanent=False
            ) from None

    @staticmethod
    def _deliver(config: SmtpConfig, email: EmailMessage, to: str) -> None:
        context = ssl.create_default_context(cafile=config.ca_file)
        client: smtplib.SMTP
        if config.security == "tls":
            client = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout_seconds, context=context)
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=config.timeout_seconds)
        try:
            if config.security == "starttls":
                client.starttls(context=context)
            if config.username is not None and config.password is not None:
                client.login(config.username, config.password.get_secret_value())
            client.send_message(email, from_addr=config.sender, to_addrs=[to])
        finally:
            # Once the server accepted the message it is sent: a failing QUIT must not make it look undelivered
            # (it would be sent again), so QUIT's errors are ignored (``with client`` would raise them).
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
