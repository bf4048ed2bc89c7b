"""Answer-impact preview: what an SOP change does to answers, before it merges.

The KB folder at a git ref is exported (``git archive``) into a temporary folder; the working tree's KB and
that export are each synced into a temporary index, and every test-set question is answered on both. The
questions whose top passage, coverage decision or draft changed are listed. Embeddings are reused: the
working tree's index starts as a copy of the current index folder (when there is one) and the base's as a
copy of the working tree's, so each sync embeds only the chunks that differ (chunk ids are content hashes).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sopilot.core.errors import SopilotError
from sopilot.core.settings import Settings
from sopilot.draft.factory import open_drafter
from sopilot.eval.testset import Question
from sopilot.index.embedder import Embedder
from sopilot.ingest.run import current_kb_version, run_ingest
from sopilot.retrieval.search import open_retriever

# What is not copied from an index folder: the logs, keys and reports of a running service.
_NOT_COPIED = ("querylog.sqlite3*", "keys.sqlite3*", "reports", "*.lock")


class GitRefError(SopilotError):
    """The KB is not in a git repository, or the ref does not name a commit."""

    exit_code = 2
    http_status = 400


@dataclass(frozen=True, slots=True)
class AnswerView:
    """What an agent would see first for a question."""

    top: str  # path#anchor of the top passage, "" when none
    top_heading: str
    covered: bool
    draft: str
    cited: tuple[str, ...]  # path#anchor of each answer citation

    def to_dict(self) -> dict[str, Any]:
        return {
            "top": self.top,
            "top_heading": self.top_heading,
            "covered": self.covered,
            "draft": self.draft,
            "cited": list(self.cited),
        }


@dataclass(frozen=True, slots=True)
class ImpactRow:
    id: str
    question: str
    base: AnswerView
    head: AnswerView

    @property
    def changes(self) -> tuple[str, ...]:
        out = []
        if self.base.top != self.head.top:
            out.append("top passage")
        if self.base.covered != self.head.covered:
            out.append("coverage")
        if self.base.draft != self.head.draft:
            out.append("draft")
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "changes": list(self.changes),
            "base": self.base.to_dict(),
            "head": self.head.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class Impact:
    base_ref: str
    base_commit: str
    questions: int
    changed: list[ImpactRow]

    def count(self, change: str) -> int:
        return sum(change in row.changes for row in self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base_ref,
            "base_commit": self.base_commit,
            "questions": self.questions,
            "changed": len(self.changed),
            "by_change": {c: self.count(c) for c in ("top passage", "coverage", "draft")},
            "rows": [row.to_dict() for row in self.changed],
        }


def _git(cwd: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, check=True)
    except FileNotFoundError:
        raise GitRefError("git is not installed; the impact preview reads the KB at a ref with git") from None
    except subprocess.CalledProcessError as exc:
        message = exc.stderr.decode(errors="replace").strip().splitlines()
        raise GitRefError(f"git {' '.join(args[:2])} failed: {message[-1] if message else exc}") from None
    return done.stdout


def export_kb_at(kb_dir: Path, ref: str, dest: Path) -> str:
    """Write the KB folder as it is at ``ref`` into ``dest``; returns the commit id."""
    kb = kb_dir.resolve()
    try:
        top = Path(_git(kb, "rev-parse", "--show-toplevel").decode().strip())
    except GitRefError:
        raise GitRefError(f"{kb_dir} is not inside a git repository; --base needs the KB's history") from None
    try:
        commit = _git(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode().strip()
    except GitRefError:
        raise GitRefError(f"{ref!r} is not a commit of {top}; give a branch, tag or commit (e.g. main)") from None
    rel = kb.relative_to(top).as_posix()
    archive = _git(top, "archive", "--format=tar", commit, "--", rel if rel != "." else ".")
    dest.mkdir(parents=True, exist_ok=True)
    prefix = "" if rel == "." else rel.rstrip("/") + "/"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if not member.name.startswith(prefix) or not (member.isfile() or member.isdir()):
                continue  # links are left out: the KB's own discovery refuses them anyway
            member.name = member.name[len(prefix) :]
            if member.name:
                tar.extract(member, dest, filter="data")
    return commit


def answer_all(settings: Settings, embedder: Embedder, questions: Sequence[Question], k: int) -> dict[str, AnswerView]:
    """Each question answered by the agents' own search and drafter over the index ``settings`` names."""
    retriever = open_retriever(settings, embedder)
    drafter = open_drafter(settings, retriever.store, kb_version=current_kb_version(settings), embedder=embedder)
    views = {}
    for q in questions:
        result = retriever.search(q.question, k=k, filters=q.filters or None)
        draft = drafter.draft(q.question, result)
        top = result.passages[0] if result.passages else None
        views[q.id] = AnswerView(
            top=f"{top.path}#{top.anchor}" if top else "",
            top_heading=" > ".join(top.heading_path) if top else "",
            covered=bool(draft.covered),
            draft=draft.text,
            cited=tuple(f"{c.path}#{c.anchor}" for c in draft.citations if c.role == "answer"),
        )
    return views


def preview_impact(
    settings: Settings,
    embedder: Embedder,
    questions: Sequence[Question],
    base_ref: str,
    *,
    k: int = 5,
    progress: Callable[[str], None] = lambda _: None,
) -> Impact:
    """Answer ``questions`` on the KB at ``base_ref`` and on the working tree; the rows that changed."""
    with tempfile.TemporaryDirectory(prefix="sopilot-impact-") as tmp:
        work = Path(tmp)
        commit = export_kb_at(settings.kb_dir, base_ref, work / "base-kb")
        progress(f"KB at {base_ref} ({commit[:12]}) exported")
        head = settings.model_copy(update={"index_dir": work / "head-index", "chroma_url": None})
        if settings.index_dir.is_dir() and settings.chroma_url is None:
            shutil.copytree(settings.index_dir, head.index_dir, ignore=shutil.ignore_patterns(*_NOT_COPIED))
        run_ingest(head, embedder, progress=False)
        progress("working tree indexed")
        base = head.model_copy(update={"kb_dir": work / "base-kb", "index_dir": work / "base-index"})
        shutil.copytree(head.index_dir, base.index_dir, ignore=shutil.ignore_patterns(*_NOT_COPIED))
        run_ingest(base, embedder, progress=False)
        progress(f"KB at {base_ref} indexed; answering {len(questions)} questions on both")
        before = answer_all(base, embedder, questions, k)
        after = answer_all(head, embedder, questions, k)
    rows = [ImpactRow(q.id, q.question, before[q.id], after[q.id]) for q in questions]
    return Impact(base_ref, commit, len(questions), [row for row in rows if row.changes])


def impact_markdown(impact: Impact) -> str:
    """The changed questions as a pull-request comment."""
    lines = [
        f"## Answer impact against `{impact.base_ref}` ({impact.base_commit[:12]})",
        "",
        f"{len(impact.changed)} of {impact.questions} questions change: top passage {impact.count('top passage')}, "
        f"coverage {impact.count('coverage')}, draft {impact.count('draft')}.",
    ]
    if not impact.changed:
        return "\n".join(lines)
    lines += ["", "| question | changes | top passage before -> after | covered before -> after |", "|---|---|---|---|"]
    for row in impact.changed:
        top = f"`{row.base.top or '-'}` -> `{row.head.top or '-'}`" if "top passage" in row.changes else "same"
        cover = f"{_yes(row.base.covered)} -> {_yes(row.head.covered)}"
        question = row.question.replace("|", "\\|")[:90]
        lines.append(f"| {row.id}: {question} | {', '.join(row.changes)} | {top} | {cover} |")
    return "\n".join(lines)


def _yes(value: bool) -> str:
    return "yes" if value else "no"
