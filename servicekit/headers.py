"""Kafka headers as text, whatever bytes a producer put in them."""

from collections.abc import Iterable, Mapping


def text_headers(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """Lower-case names; a value that is not UTF-8 is kept, with replacement characters, instead of failing."""
    return {name.lower(): (value or b"").decode("utf-8", errors="replace") for name, value in headers}


def decodes(value: bytes | None) -> bool:
    """Whether FastStream's parser can decode the value as it is (UTF-8 bytes)."""
    if value is None:
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decodable_value(value: bytes | None) -> bytes:
    """The same bytes when they are UTF-8; else the replacement-character text ``text_headers`` gives, encoded."""
    return (value or b"").decode("utf-8", errors="replace").encode("utf-8")


def encodable(headers: Mapping[str, str]) -> dict[str, str]:
    """Header values that can always be sent: text that is not valid UTF-8 (lone surrogates) is escaped."""
    return {name: value.encode("utf-8", errors="backslashreplace").decode("utf-8") for name, value in headers.items()}
