"""docs/notify.md shows the example routing file as it is and documents every NOTIFY_ setting."""

import re
from pathlib import Path

from services.notify.settings import NotifySettings
from tests.unit.notify.builders import EXAMPLE_ROUTING

DOC = Path(__file__).resolve().parents[3] / "docs" / "notify.md"


def test_the_documented_example_is_the_example_file() -> None:
    (example,) = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert example == EXAMPLE_ROUTING.read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in NotifySettings.model_fields if f"NOTIFY_{name.upper()}" not in text]
    assert missing == []
