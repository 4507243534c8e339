"""CloudEvents 1.0 whose ``data`` is the generic form, in structured mode or Kafka binary mode (``ce_*`` headers)."""

from collections.abc import Mapping
from typing import Any

from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Invalid, Outcome, RawIncident
from services.ingest.sources._labels import MAX_LABEL_VALUE
from services.ingest.sources._reading import json_object, truncate
from services.ingest.sources.generic import parse_form

REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")


def is_binary_mode(headers: Mapping[str, str]) -> bool:
    return "ce_specversion" in headers


def _attributes(raw: RawIncident) -> tuple[dict[str, Any], Any] | Invalid:
    """The event's context attributes and its data, whichever mode carried them."""
    if is_binary_mode(raw.headers):
        attributes = {name[3:]: value for name, value in raw.headers.items() if name.startswith("ce_")}
        data = json_object(raw.body)
        if isinstance(data, Invalid):
            return Invalid(f"data: {data.reason}")
        return attributes, data
    envelope = json_object(raw.body)
    if isinstance(envelope, Invalid):
        return envelope
    if "data_base64" in envelope:
        return Invalid("data_base64 is not supported: send the generic form as JSON data")
    return envelope, envelope.get("data")


def normalise(raw: RawIncident, config: NormalisationConfig) -> Outcome:
    parsed = _attributes(raw)
    if isinstance(parsed, Invalid):
        return parsed
    attributes, data = parsed
    missing = [name for name in REQUIRED_ATTRIBUTES if not attributes.get(name)]
    if missing:
        return Invalid(f"CloudEvent lacks required attributes: {', '.join(missing)}")
    if str(attributes["specversion"]) != "1.0":
        return Invalid(f"specversion {attributes['specversion']!r} is not supported (expected 1.0)")
    if not isinstance(data, dict):
        return Invalid("data: expected a JSON object in the generic form")
    # Keep the envelope's provenance where reviewers can see it; it is validated with the incident, never copied in
    # afterwards (a copy skips validation, and text that cannot be serialised would only fail at publish time).
    provenance = {name: truncate(str(attributes[name[3:]]), MAX_LABEL_VALUE) for name in ("ce_source", "ce_type")}
    return parse_form(data, "cloudevents", config, provenance)
