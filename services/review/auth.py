"""Who is calling the review API: bearer tokens from ``REVIEW_API_TOKENS``, each with a name and a role.

Tokens are compared in constant time (their SHA-256 digests, against every known token, without stopping at a
match), and never appear in logs or error messages: a bad entry in the setting is named by its position.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

MIN_TOKEN_LENGTH = 16


class Role(StrEnum):
    VIEWER = "viewer"  # reads
    EDITOR = "editor"  # reads, edits sections and action items, moves reviews along the workflow
    ADMIN = "admin"  # and cancels, declares not required, waives unfinished action items at closing

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def can(self, needed: "Role") -> bool:
        return self.rank >= needed.rank


class ApiClient(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    role: Role


@dataclass(frozen=True)
class Caller:
    """The authenticated client, or an anonymous reader (``client`` None)."""

    client: ApiClient | None

    @property
    def name(self) -> str | None:
        return self.client.name if self.client else None


class TokenSettingError(ValueError):
    """``REVIEW_API_TOKENS`` is malformed; the message says where, never what the token is."""


class ApiTokens:
    def __init__(self, clients: dict[str, ApiClient]) -> None:
        self._digests = [(hashlib.sha256(token.encode()).digest(), client) for token, client in clients.items()]

    @classmethod
    def parse(cls, raw: str) -> "ApiTokens":
        try:
            content = json.loads(raw or "{}")
        except json.JSONDecodeError as exc:
            raise TokenSettingError(f"REVIEW_API_TOKENS is not valid JSON: {exc.msg} at character {exc.pos}") from None
        if not isinstance(content, dict):
            raise TokenSettingError('REVIEW_API_TOKENS must be a JSON object: {"<token>": {"name": ..., "role": ...}}')
        clients: dict[str, ApiClient] = {}
        for position, (token, client) in enumerate(content.items(), start=1):
            where = f"REVIEW_API_TOKENS entry #{position}"
            if len(token) < MIN_TOKEN_LENGTH:
                raise TokenSettingError(f"{where}: the token is shorter than {MIN_TOKEN_LENGTH} characters")
            try:
                clients[token] = ApiClient.model_validate(client)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
                    for error in exc.errors(include_url=False, include_input=False)
                )
                raise TokenSettingError(f"{where}: {problems}") from None
        return cls(clients)

    def identify(self, token: str) -> ApiClient | None:
        """The client holding ``token``, or None. Takes the same time whichever token (if any) matches."""
        presented = hashlib.sha256(token.encode()).digest()
        found: ApiClient | None = None
        for digest, client in self._digests:
            if hmac.compare_digest(presented, digest):
                found = client
        return found

    def __repr__(self) -> str:
        return f"ApiTokens({len(self._digests)} tokens)"
