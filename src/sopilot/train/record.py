"""``train.json`` in the index folder: what a ``sopilot train`` run learned from, what it cost, what it reached."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sopilot.core.errors import ConfigError
from sopilot.core.settings import Settings

RECORD_FILE = "train.json"
STEPS = ("embedder", "answerability")  # in the order they run


def parse_steps(text: str) -> list[str]:
    """The steps named in a comma-separated list, in the order they run; an unknown name is refused."""
    asked = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in asked if s not in STEPS]
    if unknown or not asked:
        raise ConfigError(
            f"unknown training step(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(STEPS)}"
        )
    return [s for s in STEPS if s in asked]


def record_path(index_dir: Path) -> Path:
    return index_dir / RECORD_FILE


@dataclass
class TrainRecord:
    """One training run: the KB it saw (version digest and counts), the settings, each step's figures."""

    kb_dir: str
    kb_version: str = ""
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    seconds: float = 0.0
    load_average: list[float] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    use: str = ""  # the setting that makes searches use what was trained, when one is needed

    @classmethod
    def start(cls, settings: Settings) -> TrainRecord:
        shown = settings.model_dump(mode="json", exclude={"llm_api_key"})
        return cls(kb_dir=str(settings.kb_dir), settings=shown)

    def finish(self, started: float) -> None:
        """Time taken and the machine's load when it ended (timings on a shared machine mean little without)."""
        self.seconds = round(time.perf_counter() - started, 1)
        self.load_average = [round(v, 2) for v in os.getloadavg()]

    def write(self, index_dir: Path) -> Path:
        path = record_path(index_dir)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path


def read_record(index_dir: Path) -> dict[str, Any] | None:
    """The last run's record, or None when the index was never trained."""
    path = record_path(index_dir)
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
