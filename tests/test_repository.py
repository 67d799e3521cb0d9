"""The repository stands alone: no tracked file points outside it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import REPO


def test_no_tracked_file_refers_outside_the_repository() -> None:
    """Docs, code and tests must explain themselves without files a user does not have."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    needle = "../" + "shared"  # split so this file does not match itself
    offenders = [
        f for f in files if (REPO / f).is_file() and needle in (REPO / f).read_text(errors="ignore")
    ]
    assert not offenders, f"files that refer to {needle}: {offenders}"


def _docs() -> list[Path]:
    """The Markdown a user reads: README.md and docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_docs_do_not_cite_a_tracker() -> None:
    """The docs state their targets and reasons themselves: a user has no issue tracker
    to look them up in."""
    import re

    for doc in _docs():
        hits = [
            n
            for n, line in enumerate(doc.read_text().splitlines(), 1)
            if re.search(r"\bissues?\b", line, re.IGNORECASE)
        ]
        assert not hits, f"{doc.name} cites an issue on lines {hits}; say what it asks instead"


def _anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    import re

    out, fence = set(), False
    for line in doc.read_text().splitlines():
        fence ^= line.startswith("```")
        if not fence and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_docs_links_resolve() -> None:
    """Every relative Markdown link in README.md and docs/ points at a file that exists,
    and at a heading of it when it names one."""
    import re

    for doc in _docs():
        for target, anchor in re.findall(r"\]\(([^)#:]*)(?:#([^)]*))?\)", doc.read_text()):
            path = (doc.parent / target) if target else doc
            assert path.exists(), f"{doc.name} links to missing {target}"
            if anchor and path.suffix == ".md":
                assert anchor in _anchors(path), f"{doc.name} links to missing {target}#{anchor}"
