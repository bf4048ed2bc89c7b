"""The KB's lint configuration: ``.sopilot-lint.toml`` at the KB root (all keys optional).

Team and channel vocabularies that the file does not give are learned from the KB: a value used by at least
``learn_min_files`` SOPs is known; a value used less often and close to a known one reads as a typo.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sopilot.author.findings import RULES, Level
from sopilot.core.errors import ConfigError

CONFIG_FILE = ".sopilot-lint.toml"
DEFAULT_REQUIRED_FIELDS = ("id", "title", "owner", "last_reviewed", "review_every_days")
DEFAULT_STEP_HEADINGS = r"^(resolution|resolve|procedure|steps|fix|how to)\b"


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    paths: tuple[str, ...] = ()  # glob patterns of KB paths that are of this kind
    required: tuple[str, ...] = ()  # regexes on a section's own heading, one per required section


@dataclass(frozen=True, slots=True)
class Accepted:
    """A finding the KB keeps on purpose: still reported, at info level, with the reason."""

    path: str
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class LintConfig:
    required_fields: tuple[str, ...] = DEFAULT_REQUIRED_FIELDS
    teams: tuple[str, ...] = ()  # empty: learned from the KB
    channels: tuple[str, ...] = ()  # empty: learned from the KB
    learn_min_files: int = 2
    kinds: dict[str, Kind] = field(default_factory=lambda: {"procedure": Kind("procedure")})
    default_kind: str = "procedure"
    step_headings: str = DEFAULT_STEP_HEADINGS
    max_section_words: int = 500
    site_prefix: str = ""  # links like /handbook/x/ resolve to KB_DIR/x.md when set to "/handbook/"
    relative_to: str = "file"  # "page": relative links start at the page's URL (x.md served at x/), as on Hugo
    off: tuple[str, ...] = ()
    levels: dict[str, Level] = field(default_factory=dict)
    ignore: tuple[str, ...] = ("README.md",)
    accepted: tuple[Accepted, ...] = ()
    source: str = "defaults"

    def kind_of(self, path: str, declared: str) -> str:
        if declared:
            return declared
        for kind in self.kinds.values():
            if any(fnmatch.fnmatch(path, pattern) for pattern in kind.paths):
                return kind.name
        return self.default_kind

    def level(self, rule: str) -> Level:
        return self.levels.get(rule, RULES[rule].level)

    def accepted_reason(self, path: str, rule: str) -> str | None:
        return next((a.reason for a in self.accepted if a.rule == rule and fnmatch.fnmatch(path, a.path)), None)


_KEYS = {
    "required_fields",
    "teams",
    "channels",
    "learn_min_files",
    "kinds",
    "default_kind",
    "step_headings",
    "max_section_words",
    "site_prefix",
    "relative_to",
    "rules",
    "ignore",
    "accepted",
}


def load_lint_config(kb_dir: Path, path: Path | None = None) -> LintConfig:
    """The config at ``path`` or at the KB root; defaults when there is none."""
    path = path or kb_dir / CONFIG_FILE
    if not path.is_file():
        if path != kb_dir / CONFIG_FILE:
            raise ConfigError(f"lint config {path} does not exist: give an existing file or leave --config out")
        return LintConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"lint config {path} is not valid TOML: {exc}. Fix the syntax") from exc
    try:
        return _parse(raw, str(path))
    except (TypeError, ValueError, re.error) as exc:
        raise ConfigError(f"lint config {path}: {exc}. See docs/authoring.md, 'Lint configuration'") from exc


def _parse(raw: dict[str, Any], source: str) -> LintConfig:
    unknown = set(raw) - _KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; known keys: {sorted(_KEYS)}")
    base = LintConfig()
    kinds = dict(base.kinds)
    for name, spec in (raw.get("kinds") or {}).items():
        if not isinstance(spec, dict):
            raise TypeError(f"[kinds.{name}] must be a table with `paths` and `required`")
        extra = set(spec) - {"paths", "required"}
        if extra:
            raise ValueError(f"[kinds.{name}] has unknown key(s) {sorted(extra)}; use `paths` and `required`")
        required = tuple(_strings(spec.get("required", []), f"kinds.{name}.required"))
        for pattern in required:
            re.compile(pattern)
        kinds[name] = Kind(name, tuple(_strings(spec.get("paths", []), f"kinds.{name}.paths")), required)
    rules = raw.get("rules") or {}
    off = tuple(_strings(rules.get("off", []), "rules.off"))
    levels = {rule: Level(value) for rule, value in (rules.get("severity") or {}).items()}
    accepted = tuple(_accepted(raw.get("accepted", [])))
    for rule in (*off, *levels, *(a.rule for a in accepted)):
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; rules are {', '.join(RULES)}")
    default_kind = str(raw.get("default_kind", base.default_kind))
    if default_kind not in kinds:
        raise ValueError(f"default_kind {default_kind!r} is not one of the kinds {sorted(kinds)}")
    step_headings = str(raw.get("step_headings", base.step_headings))
    re.compile(step_headings)
    max_words = int(raw.get("max_section_words", base.max_section_words))
    min_files = int(raw.get("learn_min_files", base.learn_min_files))
    if max_words < 1 or min_files < 1:
        raise ValueError("max_section_words and learn_min_files must be at least 1")
    relative_to = str(raw.get("relative_to", base.relative_to))
    if relative_to not in ("file", "page"):
        raise ValueError(f"relative_to must be 'file' or 'page', got {relative_to!r}")
    return LintConfig(
        relative_to=relative_to,
        required_fields=tuple(_strings(raw.get("required_fields", base.required_fields), "required_fields")),
        teams=tuple(_strings(raw.get("teams", []), "teams")),
        channels=tuple(_strings(raw.get("channels", []), "channels")),
        learn_min_files=min_files,
        kinds=kinds,
        default_kind=default_kind,
        step_headings=step_headings,
        max_section_words=max_words,
        site_prefix=str(raw.get("site_prefix", "")),
        off=off,
        levels=levels,
        ignore=tuple(_strings(raw.get("ignore", base.ignore), "ignore")),
        accepted=accepted,
        source=source,
    )


def _accepted(value: Any) -> list[Accepted]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise TypeError("`accepted` must be an array of tables ([[accepted]] with path, rule and reason)")
    out = []
    for entry in value:
        if set(entry) != {"path", "rule", "reason"} or not all(isinstance(v, str) and v for v in entry.values()):
            raise ValueError(f"[[accepted]] {entry!r} needs exactly `path`, `rule` and a non-empty `reason`")
        out.append(Accepted(entry["path"], entry["rule"], entry["reason"]))
    return out


def _strings(value: Any, key: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"`{key}` must be a list of strings, got {value!r}")
    return list(value)
