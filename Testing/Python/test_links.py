"""Every relative link in README.md and docs/ names a file in the repository, and a heading where it names one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code, where links are links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings, a repeated heading numbered as GitHub numbers it."""
    seen: dict[str, int] = {}
    found = set()
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.MULTILINE):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(prose(page.read_text()))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]  # fmt: skip


def test_the_pages_exist_and_link_somewhere():
    assert len(PAGES) >= 10
    assert sum(len(relative_links(page)) for page in PAGES) >= 20


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or ROOT not in file.parents and file != ROOT:
            broken.append(f"{target}: no file {path}")
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, broken


def test_slugs_follow_github():
    assert slug("Cohorts (`mmreg batch`)") == "cohorts-mmreg-batch"
    assert slug("Several bones that moved: `--piecewise`") == "several-bones-that-moved---piecewise"
    assert slug("In 3D Slicer") == "in-3d-slicer"


def test_readme_is_short_and_tutorial_first():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 170  # four short tutorials, the rest in docs/
    headings = re.findall(r"^## (.+)$", readme, re.MULTILINE)
    assert headings.index("Install in Slicer") < headings.index("Tutorial: register an MR to a CT in five steps")
    for needed in ("Licence", "Citation", "Support"):
        assert needed in headings
    assert "needs no network" not in readme and "make demo" in readme and "make test" in readme
    for reference in ("Klein", "Shamonin", "Avants", "discourse.slicer.org"):
        assert reference in readme
