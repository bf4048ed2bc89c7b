"""Split YAML front matter from a Markdown file and validate it into ``SopMeta``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sopilot.core.types import Escalation, Problem, Role, SopMeta

_FENCE = re.compile(r"^---\s*$")


class _EscalationModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: str
    channel: str = ""
    when: str = ""


class _LintModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disable: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        """``lint: [rule, ...]`` is short for ``lint: {disable: [rule, ...]}``; a single string is one rule."""
        if value is None:
            return {}
        if isinstance(value, str):
            return {"disable": [value]}
        if isinstance(value, list):
            return {"disable": value}
        if isinstance(value, dict) and False in value:  # YAML reads an unquoted `off:` key as false
            return {"disable": value[False], **{k: v for k, v in value.items() if k is not False}}
        return value


class FrontMatterModel(BaseModel):
    """The keys SOPilot understands; unknown keys are kept by the author's tools but ignored here."""

    model_config = ConfigDict(extra="allow")

    id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    title: str | None = Field(None, min_length=1, max_length=300)
    owner: str = ""
    tags: list[str] = []
    products: list[str] = []
    status: Literal["active", "draft", "deprecated"] = "active"
    last_reviewed: date | None = None
    review_every_days: int | None = Field(None, gt=0, le=3650)
    escalation: _EscalationModel | None = None
    description: str = ""
    roles: dict[str, Role] = Field(
        default_factory=dict, description="Section role by heading, where the author knows better than the classifier."
    )
    kind: str = Field("", max_length=40, description="SOP kind for `sopilot lint` (procedure, reference, ...).")
    lint: _LintModel = Field(default_factory=lambda: _LintModel(), description="Lint rules switched off here.")

    @field_validator("tags", "products", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):  # YAML reads `[api, 429]` as a string and a number: both are tags
            return [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value]
        return value

    @field_validator("owner", "description", "kind", mode="before")
    @classmethod
    def _none_to_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


@dataclass(frozen=True, slots=True)
class FrontMatter:
    data: FrontMatterModel
    end_line: int  # number of lines the front matter block takes (0 when there is none)


def split_front_matter(text: str, rel: str) -> tuple[FrontMatter | None, Problem | None]:
    """Parse the ``---`` block at the top of ``text``; no block gives empty front matter."""
    lines = text.splitlines()
    if not lines or not _FENCE.match(lines[0]):
        return FrontMatter(FrontMatterModel(), 0), None
    closing = front_matter_lines(lines) - 1
    if closing < 0:
        return None, Problem(
            rel,
            "front-matter-unclosed",
            "front matter opened with '---' is never closed",
            "add a line '---' after the last front matter key",
            line=1,
        )
    block = "\n".join(lines[1:closing])
    try:
        raw = yaml.safe_load(block) if block.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, Problem(
            rel,
            "front-matter-yaml",
            f"front matter is not valid YAML: {reason}",
            "fix the YAML syntax (quote values that contain ':' or '#')",
            line=line,
        )
    if not isinstance(raw, dict):
        return None, Problem(
            rel,
            "front-matter-yaml",
            "front matter must be a mapping of keys to values",
            "write 'key: value' lines between the '---' lines",
            line=2,
        )
    # Keys are matched without regard to case ("Title:" is "title:"); the first spelling wins.
    normalised: dict[str, Any] = {}
    for key, value in raw.items():
        normalised.setdefault(str(key).lower(), value)
    try:
        model = FrontMatterModel.model_validate(normalised)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "front matter"
        return None, Problem(
            rel,
            "front-matter-invalid",
            f"front matter key '{key}': {first['msg']}",
            f"correct '{key}' (see docs/authoring.md for the keys and their types)",
            line=_line_of_key(lines[1:closing], str(first["loc"][0]) if first["loc"] else ""),
        )
    return FrontMatter(model, closing + 1), None


def front_matter_lines(lines: list[str]) -> int:
    """Number of lines the front matter block takes at the top (0 when there is none or it is unclosed)."""
    if not lines or not _FENCE.match(lines[0]):
        return 0
    closing = next((i for i in range(1, len(lines)) if _FENCE.match(lines[i]) or lines[i] == "..."), None)
    return 0 if closing is None else closing + 1


def blank_front_matter(text: str) -> str:
    """``text`` with its front matter lines emptied, so Markdown line numbers stay the file's own."""
    lines = text.splitlines()
    n = front_matter_lines(lines)
    return "\n".join([""] * n + lines[n:])


def _line_of_key(block_lines: list[str], key: str) -> int:
    for i, line in enumerate(block_lines):
        if line.startswith(f"{key}:"):
            return i + 2
    return 1


def to_meta(fm: FrontMatterModel, sop_id: str, title: str) -> SopMeta:
    esc = fm.escalation
    return SopMeta(
        id=sop_id,
        title=title,
        owner=fm.owner,
        tags=tuple(fm.tags),
        products=tuple(fm.products),
        status=fm.status,
        last_reviewed=fm.last_reviewed,
        review_every_days=fm.review_every_days,
        escalation=Escalation(esc.team, esc.channel, esc.when) if esc else None,
        description=fm.description,
        roles=tuple((heading, role.value) for heading, role in fm.roles.items()),
    )
