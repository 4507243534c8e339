"""The README and docs/ point only at what exists: links (and their anchors), the layout's folders and files, and
the modules of each service's module map."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Which folder each module map (a table whose rows start with a `file.py` in backticks) describes.
MODULE_MAPS = {"review.md": "services/review", "followup.md": "services/followup"}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(document: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", document.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def local_links(document: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", document.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_local_link_and_anchor_exists(document: Path) -> None:
    broken = []
    for target in local_links(document):
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert broken == []


def layout_entries() -> list[tuple[str, str]]:
    """(folder, its description) for each entry of the README's layout block; continuation lines join the entry."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Layout\n\n```\n(.*?)```", readme, flags=re.DOTALL)
    assert block is not None, "the README has a Layout section with a code block"
    entries: list[tuple[str, str]] = []
    for line in block.group(1).splitlines():
        if line.startswith(" "):
            folder, description = entries[-1]
            entries[-1] = (folder, f"{description} {line.strip()}")
        else:
            folder, _, description = line.partition("  ")
            entries.append((folder.strip(), description.strip()))
    return entries


def test_the_layout_names_only_folders_and_files_that_exist() -> None:
    entries = layout_entries()
    assert len(entries) >= 10
    missing = []
    for folders, description in entries:
        for folder in folders.split(", "):
            assert folder.endswith("/"), folder
            if not (REPO / folder).is_dir():
                missing.append(folder)
            # What the description names inside the folder: files (x.py) and sub-folders (x/).
            inside = re.findall(r"(?<![\w./`-])([a-z0-9_]+(?:\.py|/))(?=[\s,;:()]|$)", description)
            missing += [folder + name for name in inside if not (REPO / folder / name).exists()]
    assert missing == []


def test_the_layout_says_what_services_share() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "Services share `schemas/` (contracts) and `servicekit/` (plumbing), nothing else" in readme


@pytest.mark.parametrize(("doc", "folder"), MODULE_MAPS.items())
def test_every_module_of_a_module_map_exists(doc: str, folder: str) -> None:
    text = (REPO / "docs" / doc).read_text(encoding="utf-8")
    modules = re.findall(r"^\| `([\w/]+\.py)` \|", text, flags=re.MULTILINE)
    assert len(modules) >= 5, f"{doc} has a module map"
    assert [module for module in modules if not (REPO / folder / module).is_file()] == []


def test_the_webhook_receivers_code_map_names_existing_modules() -> None:
    text = (REPO / "docs" / "webhooks.md").read_text(encoding="utf-8")
    code = text[text.index("## Code") :]
    modules = re.findall(r"`(\w+\.py)`", code)
    assert len(modules) >= 4
    folder = REPO / "services" / "ingest" / "webhooks"
    assert [module for module in modules if not (folder / module).is_file()] == []
