"""What every command shares: settings from env and flags, the embedder, JSON output, error exits."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sopilot.core.errors import ConfigError
from sopilot.core.settings import Settings


def add_common(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    parser.add_argument("--kb", type=Path, metavar="DIR", help="KB folder (default: SOPILOT_KB_DIR or kb/)")
    parser.add_argument(
        "--index", type=Path, metavar="DIR", help="index folder (default: SOPILOT_INDEX_DIR or .sopilot/)"
    )
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars on stderr")


def load_settings(args: argparse.Namespace) -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "SOPILOT_" + "_".join(str(p) for p in first["loc"]).upper()
        raise ConfigError(f"setting {name} is invalid: {first['msg']}") from exc
    return settings.with_paths(getattr(args, "kb", None), getattr(args, "index", None))


def load_embedder(settings: Settings) -> Any:
    from sopilot.index.embedder import embedder_for

    return embedder_for(settings)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def quiet_libraries() -> None:
    """Library chatter (weight-loading bars, warnings) stays off the user's terminal.

    Hugging Face libraries read their verbosity from the environment when they are first imported, so
    nothing is imported here: a command that never loads a model never pays for transformers' import."""
    for name in ("transformers", "sentence_transformers", "chromadb", "httpx", "bm25s", "llama_index"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
