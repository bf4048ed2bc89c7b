"""``sopilot search|ask --server URL``: the same questions asked of a running ``sopilot serve`` over HTTP.

The server's JSON is turned back into the objects the commands print, so the output reads the same as a
local run. The key comes from ``SOPILOT_SERVER_KEY``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx

from sopilot.core.errors import SopilotError
from sopilot.core.settings import Settings
from sopilot.core.types import Citation, Draft, DraftSentence, Escalation, Passage
from sopilot.retrieval.search import SearchResult


class ServerError(SopilotError):
    """The server refused the request or could not be reached."""


class Remote:
    def __init__(self, url: str, settings: Settings, timeout: float = 120.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ServerError(f"--server must be a URL starting with http:// or https://, got {url!r}")
        key = settings.server_key.get_secret_value() if settings.server_key else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach {self.url}: {exc}. Start it with `sopilot serve`") from exc
        if response.status_code >= 400:
            raise _error(response)
        data: dict[str, Any] = response.json()
        return data

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        """Server-sent events as (event, data) pairs."""
        try:
            with self._client.stream("POST", path, json={**body, "stream": True}) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                event = ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        yield event, json.loads(line.removeprefix("data: "))
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach {self.url}: {exc}. Start it with `sopilot serve`") from exc


def _error(response: httpx.Response) -> ServerError:
    try:
        error = response.json()["error"]
        fix = f" Fix: {error['fix']}" if error.get("fix") else ""
        return ServerError(f"the server answered {response.status_code} {error['code']}: {error['message']}.{fix}")
    except (ValueError, KeyError, TypeError):
        return ServerError(f"the server answered {response.status_code}: {response.text[:300]}")


def passage_of(p: dict[str, Any]) -> Passage:
    return Passage(
        chunk_id=p["chunk_id"],
        path=p["path"],
        title=p["title"],
        heading_path=tuple(p["heading_path"]),
        anchor=p["anchor"],
        start_line=p["start_line"],
        end_line=p["end_line"],
        text=p["text"],
        score=p["score"],
        scores=p["scores"],
        metadata={"role": p.get("role", "")},
    )


def result_of(data: dict[str, Any]) -> SearchResult:
    return SearchResult(
        data["query"],
        [passage_of(p) for p in data["passages"]],
        data.get("covered"),
        data.get("coverage_reason", ""),
        data.get("filters", {}),
    )


def draft_of(data: dict[str, Any]) -> Draft:
    e = data.get("escalation")
    return Draft(
        text=data["text"],
        covered=data["covered"],
        sentences=tuple(DraftSentence(s["text"], tuple(s["citations"]), s["supported"]) for s in data["sentences"]),
        citations=tuple(
            Citation(
                c["n"],
                c["chunk_id"],
                c["path"],
                c["anchor"],
                tuple(c["heading_path"]),
                c["start_line"],
                c["end_line"],
                c["quote"],
                c["role"],
                c["section_role"],
            )
            for c in data["citations"]
        ),
        abstention_reason="" if data["covered"] else data["coverage_reason"],
        escalation=Escalation(e["team"], e["channel"], e["when"]) if e else None,
        provenance={"drafter": data["drafter"], "kb_version": data["kb_version"], "server": True},
    )


def stream_answer(remote: Remote, body: dict[str, Any], echo: bool) -> dict[str, Any]:
    """Ask with server-sent events, echoing the text to stderr as it comes; returns the final answer."""
    for event, data in remote.stream("/v1/answer", body):
        if event == "delta" and echo:
            sys.stderr.write(data["text"])
            sys.stderr.flush()
        elif event == "answer":
            return dict(data)
        elif event == "error":
            error = data["error"]
            raise ServerError(f"the server failed while drafting: {error['code']}: {error['message']}")
    raise ServerError("the server closed the stream before the answer")
