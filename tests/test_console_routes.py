"""The SOP routes and the console's pages through the app: listing, safe rendering, anchors, refused paths."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sopilot.api.app import create_app
from sopilot.api.routes.console import CONTENT_SECURITY_POLICY
from sopilot.core.settings import Settings
from sopilot.index.embedder import Embedder


@pytest.fixture(scope="module")
def client(shipped_index: Settings, embedder: Embedder) -> Iterator[TestClient]:
    with TestClient(create_app(shipped_index, embedder=embedder)) as c:
        yield c


def test_the_sop_list_gives_path_title_team_status_and_review_dates(client: TestClient) -> None:
    response = client.get("/v1/sops")
    assert response.status_code == 200
    sops = {s["path"]: s for s in response.json()["sops"]}
    assert "README.md" not in sops and len(sops) > 50
    sop = sops["access/2fa-reset-lost-phone.md"]
    assert sop["title"] == "Resetting 2FA for a reviewer who lost their phone"
    assert (sop["team"], sop["status"], sop["last_reviewed"], sop["review_due"]) == (
        "uops-access",
        "active",
        "2026-10-06",
        "2027-01-04",
    )


def test_every_passage_link_lands_on_a_heading_of_the_rendered_sop(client: TestClient) -> None:
    answer = client.post("/v1/answer", json={"query": "reviewer lost her phone, cant get past the 2fa prompt"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    links = {(p["path"], p["anchor"]) for p in body["passages"]} | {(c["path"], c["anchor"]) for c in body["citations"]}
    assert links
    for path, anchor in links:
        sop = client.get(f"/v1/sops/{path}")
        assert sop.status_code == 200, sop.text
        rendered = sop.json()
        assert anchor in {h["anchor"] for h in rendered["headings"]}
        assert f'id="{anchor}"' in rendered["html"]


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/v1/sops/%2E%2E/pyproject.toml", 400),
        ("/v1/sops/access/%2E%2E/%2E%2E/README.md", 400),
        ("/v1/sops/%2Fetc%2Fpasswd", 400),
        ("/v1/sops/access/2fa-reset-lost-phone.txt", 400),
        ("/v1/sops/access/no-such-sop.md", 404),
        ("/v1/sops/README.md", 404),
    ],
)
def test_paths_outside_the_kb_get_a_json_error(client: TestClient, url: str, status: int) -> None:
    response = client.get(url)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] in {"invalid_sop_path", "sop_not_found"}
    assert "SOP" in error["message"]


def test_console_pages_are_served_with_a_strict_content_security_policy(client: TestClient) -> None:
    for url in ("/", "/sops", "/sop/access/2fa-reset-lost-phone.md", "/static/console.js"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
    assert (
        "script-src 'self'" in CONTENT_SECURITY_POLICY
        and "unsafe-inline" not in CONTENT_SECURITY_POLICY.split("style-src-attr")[0]
    )
    page = client.get("/").text
    assert "http://" not in page and "https://" not in page  # nothing loads from elsewhere
    for url in ("/static/..%2Fsop_files.py", "/static/missing.js", "/static/.hidden.js"):
        assert client.get(url).status_code == 404, url
