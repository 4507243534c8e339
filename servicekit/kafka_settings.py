"""How every service connects to Kafka (``KAFKA_`` settings): brokers, TLS and SASL.

Everything is checked when the settings are read, so a wrong, misspelt or inconsistent setting stops the service at
start-up with a message naming the variable, instead of connecting in plaintext or failing later at the broker.
"""

import os
import re
import ssl
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal, Self, get_args

from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import PrivateAttr, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "KAFKA_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "security_protocol": get_args(SecurityProtocol),
    "sasl_mechanism": get_args(SaslMechanism),
}
_SASL_PROTOCOLS = {"SASL_PLAINTEXT", "SASL_SSL"}
_TLS_PROTOCOLS = {"SSL", "SASL_SSL"}
_SASL_SECURITY: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
    "PLAIN": SASLPlaintext,
    "SCRAM-SHA-256": SASLScram256,
    "SCRAM-SHA-512": SASLScram512,
}

# KAFKA_ variables that are not ours and may well be set where a service runs: Kafka's own launch scripts, and the
# service links Kubernetes injects for a Service named "kafka" in the same namespace (KAFKA_PORT=tcp://...).
_FOREIGN_VARIABLES = re.compile(
    r"KAFKA_(HOME|OPTS|HEAP_OPTS|JVM_PERFORMANCE_OPTS|GC_LOG_OPTS|JMX_OPTS|LOG4J_OPTS|DEBUG"
    r"|PORT|PORT_\w+|SERVICE_HOST|SERVICE_PORT|SERVICE_PORT_\w+)"
)


def _env(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


class KafkaSettings(BaseSettings):
    """Connection settings every service reads from ``KAFKA_*``; ``client_options()`` turns them into clients' options.

    Passwords are ``SecretStr``: never in ``repr``, logs or dumps.
    """

    # hide_input_in_errors: a validation error would otherwise print the raw input, passwords included.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", env_ignore_empty=True, hide_input_in_errors=True
    )

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    # CA certificates (PEM) that sign the brokers' certificates; without one the system's trust store is used.
    ssl_ca_file: Path | None = None
    # A client certificate and its key (PEM), for brokers that authenticate clients by TLS (ssl.client.auth).
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    ssl_key_password: SecretStr | None = None
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: SecretStr | None = None
    sasl_password: SecretStr | None = None
    # SASL_PLAINTEXT sends the password (PLAIN) and all data in clear: only where the network itself is trusted.
    allow_plaintext_sasl: bool = False

    _ssl_context: ssl.SSLContext | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_variables(cls, data: Any) -> Any:
        """A misspelt variable (``KAFKA_SECURITY_PROTOCOLL``) must stop the service, not leave it in plaintext."""
        known = {_env(name) for name in cls.model_fields}
        unknown = sorted(
            name
            for name in (key.upper() for key in os.environ)
            if name.startswith(ENV_PREFIX) and name not in known and not _FOREIGN_VARIABLES.fullmatch(name)
        )
        if unknown:
            hints = []
            for name in unknown:
                close = get_close_matches(name, sorted(known), n=1)
                hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
            raise ValueError(f"unknown Kafka setting(s) {', '.join(hints)}; known: {', '.join(sorted(known))}")
        return data

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _one_of(cls, value: Any, info: ValidationInfo) -> Any:
        assert info.field_name is not None
        allowed = _CHOICES[info.field_name]
        if value is None:
            return value
        if isinstance(value, str) and value.strip().upper() in allowed:
            return value.strip().upper()
        raise ValueError(f"{_env(info.field_name)}={value!r} is not one of {', '.join(allowed)}")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self._check_sasl()
        self._check_tls_files()
        if self.security_protocol in _TLS_PROTOCOLS:
            self._ssl_context = self._build_ssl_context()
        return self

    def _check_sasl(self) -> None:
        protocol = f"{_env('security_protocol')}={self.security_protocol}"
        given = [_env(name) for name in ("sasl_mechanism", "sasl_username", "sasl_password") if getattr(self, name)]
        if self.security_protocol not in _SASL_PROTOCOLS:
            if given:
                raise ValueError(f"{', '.join(given)} set, but {protocol} uses no SASL; use SASL_SSL")
            return
        missing = [
            _env(name)
            for name in ("sasl_mechanism", "sasl_username", "sasl_password")
            if not (value := getattr(self, name)) or (isinstance(value, SecretStr) and not value.get_secret_value())
        ]
        if missing:
            raise ValueError(f"{protocol} needs {', '.join(missing)}")
        if self.security_protocol == "SASL_PLAINTEXT" and not self.allow_plaintext_sasl:
            raise ValueError(
                f"{protocol} sends the SASL password and all data unencrypted: use SASL_SSL, "
                f"or set {_env('allow_plaintext_sasl')}=true where the network is trusted"
            )

    def _check_tls_files(self) -> None:
        files = {name: getattr(self, name) for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file")}
        given = [_env(name) for name, path in files.items() if path is not None]
        if self.ssl_key_password is not None:
            given.append(_env("ssl_key_password"))
        if self.security_protocol not in _TLS_PROTOCOLS:
            if given:
                raise ValueError(
                    f"{', '.join(given)} set, but {_env('security_protocol')}={self.security_protocol} uses no TLS; "
                    "use SSL or SASL_SSL"
                )
            return
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError(
                f"{_env('ssl_cert_file')} and {_env('ssl_key_file')} go together: a client certificate needs its key"
            )
        if self.ssl_key_password is not None and self.ssl_key_file is None:
            raise ValueError(f"{_env('ssl_key_password')} set without {_env('ssl_key_file')}")
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{_env(name)}={path}: no such file")
            if path is not None and not os.access(path, os.R_OK):
                raise ValueError(f"{_env(name)}={path}: not readable")

    def _build_ssl_context(self) -> ssl.SSLContext:
        """The one place TLS is set up: hostname checked, CA from ``KAFKA_SSL_CA_FILE`` or the system."""
        try:
            ca: ssl.SSLContext = create_ssl_context(cafile=self.ssl_ca_file)
        except ssl.SSLError as error:
            raise ValueError(f"{_env('ssl_ca_file')}={self.ssl_ca_file}: not a usable PEM CA file ({error})") from None
        if self.ssl_cert_file is not None:
            password = self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
            try:
                ca.load_cert_chain(self.ssl_cert_file, self.ssl_key_file, password)
            except ssl.SSLError as error:
                raise ValueError(
                    f"{_env('ssl_cert_file')}={self.ssl_cert_file} with {_env('ssl_key_file')}={self.ssl_key_file}: "
                    f"certificate and key cannot be loaded (not PEM, not a pair, or wrong "
                    f"{_env('ssl_key_password')}): {error}"
                ) from None
        return ca

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context all clients of these settings share (``None`` without TLS)."""
        return self._ssl_context

    def security(self) -> BaseSecurity | None:
        """FastStream's description of TLS and SASL for ``KafkaBroker(security=...)``; ``None`` for PLAINTEXT."""
        if self.security_protocol == "PLAINTEXT":
            return None
        if self.security_protocol == "SSL":
            return BaseSecurity(ssl_context=self._ssl_context)
        assert self.sasl_mechanism is not None  # _check_sasl made sure of these three
        assert self.sasl_username is not None
        assert self.sasl_password is not None
        return _SASL_SECURITY[self.sasl_mechanism](
            self.sasl_username.get_secret_value(),
            self.sasl_password.get_secret_value(),
            ssl_context=self._ssl_context,
            use_ssl=self.security_protocol == "SASL_SSL",
        )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``KafkaBroker(...)`` that carry TLS and SASL (empty for PLAINTEXT)."""
        security = self.security()
        return {} if security is None else {"security": security}

    def aiokafka_options(self) -> dict[str, Any]:
        """The same connection settings as keyword arguments for plain aiokafka clients (producer, consumer, admin)."""
        if self.security_protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.security_protocol, "ssl_context": self._ssl_context}
        if self.sasl_mechanism is not None and self.sasl_username is not None and self.sasl_password is not None:
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username.get_secret_value(),
                "sasl_plain_password": self.sasl_password.get_secret_value(),
            }
        return options
