"""Why Kafka refuses a connection, in words that name the setting to fix.

aiokafka only logs the cause of a failed bootstrap (wrong password, untrusted certificate, TLS against a plaintext
port) and then raises a bare "Unable to bootstrap"; ``check_kafka_connection`` connects to each bootstrap server
itself and raises the cause.
"""

import asyncio
import ssl

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

from servicekit.kafka_settings import KafkaSettings


class KafkaConnectionRefusedError(Exception):
    """No bootstrap server accepted a connection with these settings; the message says why, for each."""


def _cause(settings: KafkaSettings, error: BaseException) -> str:  # noqa: PLR0911  # one answer per failure
    protocol = f"KAFKA_SECURITY_PROTOCOL={settings.security_protocol}"
    if isinstance(error, SaslAuthenticationFailed):
        return (
            f"SASL authentication failed with KAFKA_SASL_MECHANISM={settings.sasl_mechanism}: check "
            f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD ({error})"
        )
    if isinstance(error, UnsupportedSaslMechanismError):
        return f"the broker does not accept KAFKA_SASL_MECHANISM={settings.sasl_mechanism} ({error})"
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"the broker's TLS certificate is not trusted ({error.verify_message}): KAFKA_SSL_CA_FILE must hold the "
            "CA that signed it, and the certificate must name the host in KAFKA_BOOTSTRAP_SERVERS"
        )
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed ({error.reason}): does the listener speak {protocol}?"
    if isinstance(error, ConnectionError) and not isinstance(error, ConnectionRefusedError):
        # A plaintext listener drops a TLS handshake; a TLS listener drops plaintext requests.
        return f"the broker closed the connection: does the listener speak {protocol}?"
    if isinstance(error, TimeoutError):
        return f"no answer in time: is the host reachable, and does the listener speak {protocol}?"
    if isinstance(error, OSError):
        return f"cannot connect ({error.strerror or error})"
    return f"{type(error).__name__}: {error}"


async def check_kafka_connection(settings: KafkaSettings, *, timeout_seconds: float = 10.0) -> None:
    """Return once some bootstrap server accepts the connection (TLS and SASL included); else raise why not."""
    causes = []
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            connection = await asyncio.wait_for(
                create_conn(
                    host, int(port), request_timeout_ms=int(timeout_seconds * 1000), **settings.aiokafka_options()
                ),
                timeout_seconds,
            )
        except (OSError, TimeoutError, KafkaError) as error:
            causes.append(f"{server.strip()}: {_cause(settings, error)}")
        else:
            connection.close()
            return
    raise KafkaConnectionRefusedError("Kafka refused the connection: " + "; ".join(causes))
