"""Incident labels from vendor data, bounded so one noisy payload cannot bloat every downstream document.

At most ``MAX_LABELS`` labels per incident, keys cut to ``MAX_LABEL_KEY`` and values to ``MAX_LABEL_VALUE``
characters, a NUL in a key replaced by ``?`` (MongoDB field names cannot hold one). The labels a source derives
itself are always kept; the vendor's free-form ones (labels, tags, details, custom fields) fill the remaining room,
preferred keys first and then in key order, and ``LABELS_DROPPED`` says how many did not fit.
"""

import json
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

from services.ingest.sources._reading import as_object, clean, text, texts, truncate

MAX_LABELS = 64
MAX_LABEL_KEY = 200
MAX_LABEL_VALUE = 1_000
LABELS_DROPPED = "incident_lessons_labels_dropped"
"""Label added when a vendor sent more labels than fit: how many were left out (never silently)."""


def label_text(value: Any) -> str | None:
    """A label value as text (scalars as written, lists of scalars comma-joined, structures as compact JSON).

    ``None`` for JSON ``null`` and for what cannot be rendered.
    """
    if value is None:
        return None
    if isinstance(value, str):
        rendered = clean(value)
    elif isinstance(value, bool):
        rendered = "true" if value else "false"
    elif isinstance(value, int | float):
        rendered = text(value) or str(value)
    elif isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        rendered = ",".join(texts(value))
    else:
        try:
            rendered = clean(json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True))
        except (ValueError, TypeError, RecursionError):
            return None
    return truncate(rendered, MAX_LABEL_VALUE)


def object_labels(value: Any) -> dict[str, str]:
    """A vendor's key/value map as labels (``null`` values left out); anything that is not an object gives none."""
    labels: dict[str, str] = {}
    for key, item in as_object(value).items():
        name = text(key)
        rendered = label_text(item)
        if name is not None and rendered is not None:
            labels.setdefault(name, rendered)
    return labels


def split_tags(tags: Iterable[Any]) -> tuple[dict[str, str], list[str]]:
    """``key:value`` tags as labels (the first value of a key wins) and the plain tags left over."""
    pairs: dict[str, str] = {}
    plain: list[str] = []
    for tag in texts(tags):
        key, separator, value = tag.partition(":")
        if separator and key.strip():
            pairs.setdefault(key.strip(), value.strip())
        else:
            plain.append(tag)
    return pairs, plain


def comma_separated(value: Any) -> list[str]:
    """``"env:prod, service:api"`` as ``["env:prod", "service:api"]``; a JSON list is taken as is."""
    if isinstance(value, list):
        return texts(value)
    found = text(value)
    return [] if found is None else texts(found.split(","))


def _key(value: str) -> str:
    # A NUL cannot be in a MongoDB field name, which a label key becomes downstream: replaced like a lone surrogate.
    if value.isascii() and len(value) <= MAX_LABEL_KEY and "\x00" not in value:
        return value  # the usual label: nothing to replace or cut (this runs for every label of every alert)
    return truncate(clean(value).replace("\x00", "?"), MAX_LABEL_KEY)


def _value(value: str) -> str:
    if value.isascii() and len(value) <= MAX_LABEL_VALUE:
        return value
    return truncate(clean(value), MAX_LABEL_VALUE)


def bound_labels(
    own: Mapping[str, str | None], vendor: Mapping[str, str] | None = None, *, prefer: Iterable[str] = ()
) -> dict[str, str]:
    """At most ``MAX_LABELS`` labels: ``own`` (what the source derived) first, then ``vendor`` labels.

    Own labels without a value are left out. Vendor labels come in the order of ``prefer`` (the keys the mapping
    reads), then in key order, so the choice is deterministic; a key already taken keeps its first value. When vendor
    labels are left out, ``LABELS_DROPPED`` says how many, and counts towards the limit.
    """
    # One place is always left for LABELS_DROPPED, so the bound holds whatever a source derives.
    kept = dict(islice(((_key(key), _value(value)) for key, value in own.items() if value), MAX_LABELS - 1))
    vendor = vendor or {}
    ordered = [key for key in prefer if key in vendor]  # a key preferred twice is taken once, below
    ordered += sorted(vendor.keys() - set(ordered))
    candidates: dict[str, str] = {}
    for key in ordered:
        name = _key(key)
        if name not in kept and name not in candidates:
            candidates[name] = _value(vendor[key])
    room = MAX_LABELS - len(kept)
    if len(candidates) <= room:
        return kept | candidates
    room -= 1  # one place to say how many were left out
    return kept | dict(islice(candidates.items(), room)) | {LABELS_DROPPED: str(len(candidates) - room)}
