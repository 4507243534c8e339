"""Reading list filters from a page's query string: lenient (an unknown value is ignored and said so), never a 422."""

from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

E = TypeVar("E", bound=StrEnum)
PAGE_SIZE = 25
MAX_TEXT = 200


def choices(params: QueryParams, name: str, kind: type[E], ignored: list[str]) -> list[E]:
    chosen: list[E] = []
    for value in params.getlist(name):
        if not value:
            continue
        try:
            chosen.append(kind(value))
        except ValueError:
            ignored.append(f"{name}={value}")
    return chosen


def text(params: QueryParams, name: str) -> str | None:
    value = (params.get(name) or "").strip().replace("\x00", "")
    return value[:MAX_TEXT] or None


def page_number(params: QueryParams) -> int:
    value = params.get("page") or "1"
    return max(1, min(int(value), 40_000)) if value.isdecimal() else 1


def page_link(params: QueryParams, page: int) -> str:
    kept = [(key, value) for key, value in params.multi_items() if key != "page"]
    return "?" + urlencode([*kept, ("page", str(page))])


Link = Callable[[int], str]
