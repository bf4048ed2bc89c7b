"""Find the SOP files of a KB folder, refusing symlinks that lead outside it."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from sopilot.core.types import Problem

MARKDOWN_SUFFIXES = (".md", ".markdown")


@dataclass(slots=True)
class Discovery:
    files: list[str] = field(default_factory=list)  # POSIX paths relative to the KB root, sorted
    problems: list[Problem] = field(default_factory=list)


def discover(root: Path, ignore: tuple[str, ...] = ()) -> Discovery:
    """Markdown files under ``root``; hidden folders and ignored names are skipped."""
    root = root.resolve()
    found = Discovery()
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(folder, d)))
        for name in names:
            if not name.lower().endswith(MARKDOWN_SUFFIXES) or name.startswith("."):
                continue
            full = Path(folder, name)
            rel = full.relative_to(root).as_posix()
            if any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat) for pat in ignore):
                continue
            if full.is_symlink():
                target = full.resolve()
                if not target.is_relative_to(root):
                    found.problems.append(
                        Problem(
                            rel,
                            "symlink-outside",
                            f"symlink points outside the KB folder, to {target}",
                            "copy the SOP into the KB folder instead of linking to it",
                        )
                    )
                    continue
                if not target.is_file():
                    found.problems.append(
                        Problem(rel, "broken-symlink", "symlink points to nothing", "remove or repair the link")
                    )
                    continue
            found.files.append(rel)
    found.files.sort()
    return found
