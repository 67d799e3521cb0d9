"""The repository stands alone: no tracked file points outside it."""

from __future__ import annotations

import subprocess

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


def test_docs_links_resolve() -> None:
    """Every relative Markdown link in README.md and docs/ points at a file that exists."""
    import re

    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
