"""Safe SOP rendering: anchors equal the ingest's, hostile Markdown comes out inert, paths cannot escape the KB."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import GITLAB_DOCS, ROOT, sop, write_kb
from sopilot.api.render import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, render_sop
from sopilot.api.sop_files import (
    InvalidSopPathError,
    SopNotFoundError,
    list_sops,
    load_sop_view,
    resolve_sop_path,
)
from sopilot.ingest.chunker import Chunker
from sopilot.ingest.discover import discover
from sopilot.ingest.sop import parse_sop

HOSTILE = sop(
    "T-EVIL-1",
    "Hostile <script>window.__pwned = 1</script> SOP",
    """
    ## Steps <img src=x onerror="window.__pwned = 2"> {#steps}

    <script>window.__pwned = 3</script>
    <img src=x onerror="window.__pwned = 4">
    <a href="javascript:window.__pwned = 5" onclick="window.__pwned = 6">click</a>
    <style>body { display: none }</style>
    <iframe src="https://example.com"></iframe>

    1. [link](javascript:window.__pwned=7) and [data](data:text/html,<script>x</script>)
    2. ![tracker](https://evil.example/pixel.png) and <svg onload="window.__pwned = 8"></svg>

    | a | b |
    |---|:-:|
    | <b onmouseover="x">1</b> | 2 |
    """,
)


class _Elements(HTMLParser):
    """Every tag and attribute of an HTML fragment, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.tags


def assert_inert(html: str) -> None:
    for tag, attrs in elements(html):
        assert tag in ALLOWED_TAGS, tag
        assert set(attrs) <= ALLOWED_ATTRIBUTES.get(tag, set()) | {"rel"}, (tag, attrs)
        href = (attrs.get("href") or "").strip().lower()
        assert not href.startswith(("javascript:", "data:", "vbscript:")), href
        style = attrs.get("style")
        assert style is None or re.fullmatch(r"text-align:\s*(left|right|center)", style), style


def test_hostile_sop_is_shown_as_text_and_holds_nothing_active() -> None:
    rendered = render_sop(HOSTILE, "evil/hostile.md")
    assert_inert(rendered.html)
    # The raw HTML is there for the agent to read, as text.
    assert "&lt;script&gt;window.__pwned = 3&lt;/script&gt;" in rendered.html
    assert '&lt;img src=x onerror="window.__pwned = 4"&gt;' in rendered.html
    # Images are links, so viewing the SOP loads nothing from elsewhere.
    assert ("a", {"href": "https://evil.example/pixel.png", "rel": "noopener noreferrer"}) in elements(rendered.html)
    assert "<img" not in rendered.html
    # The custom anchor is the heading's id and not part of its text.
    assert '<h2 id="steps">' in rendered.html
    assert "{#steps}" not in rendered.html


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "<script>alert(1)</script>",
                '<img src=x onerror="alert(1)">',
                "<a href='javascript:alert(1)'>x</a>",
                "[x](javascript:alert(1))",
                "[x](JaVaScRiPt:alert(1))",
                '<div style="background:url(javascript:alert(1))">',
                "<svg/onload=alert(1)>",
                '" onmouseover="alert(1)',
                "# heading {#id}",
                "| a |\n|---|\n| <b onclick=x>1</b> |",
                "```\n<script>x</script>\n```",
                "`<img src=x onerror=y>`",
                "![a](javascript:alert(1))",
                "<!-- <script>x</script> -->",
                "\n",
                "- item",
                "> quote <iframe src=//x>",
            ]
        )
        | st.text(max_size=40),
        max_size=12,
    )
)
def test_no_markdown_yields_a_script_or_event_handler(pieces: list[str]) -> None:
    assert_inert(render_sop("\n".join(pieces), "x.md").html)


def _word_chunker() -> Chunker:
    return Chunker(lambda texts: [len(t.split()) for t in texts], 100_000)


def _assert_anchors_match_ingest(root: Path, files: list[str]) -> None:
    for rel in files:
        text = (root / rel).read_text(encoding="utf-8")
        loaded = parse_sop(text, rel, _word_chunker()).sop
        if loaded is None:
            continue
        ids = [attrs["id"] for tag, attrs in elements(render_sop(text, rel).html) if tag[0] == "h" and "id" in attrs]
        assert len(ids) == len(set(ids)), (rel, ids)
        for section in loaded.sections:
            if section.level > 0:
                assert section.anchor in ids, (rel, section.anchor, ids)


def test_heading_ids_are_the_anchors_ingest_gives_every_shipped_section() -> None:
    kb = ROOT / "kb"
    files = discover(kb, ("README.md",)).files
    assert len(files) > 50
    _assert_anchors_match_ingest(kb, files)


def test_duplicate_and_custom_headings_get_the_ingest_anchors(tmp_path: Path) -> None:
    body = "## Steps\n\ntext\n\n## Steps\n\nmore\n\n## Verify `code` *now* {#check-it}\n\nx\n\n## Steps\n"
    root = write_kb(tmp_path / "kb", {"a.md": sop("A-1", "A", body)})
    _assert_anchors_match_ingest(root, ["a.md"])
    ids = [
        attrs["id"] for tag, attrs in elements(render_sop((root / "a.md").read_text(), "a.md").html) if "id" in attrs
    ]
    assert ids == ["a", "steps", "steps-1", "check-it", "steps-2"]


@pytest.mark.skipif(not GITLAB_DOCS.is_dir(), reason="shared GitLab support handbook not present")
def test_heading_ids_match_ingest_on_the_gitlab_handbook() -> None:
    files = discover(GITLAB_DOCS).files
    _assert_anchors_match_ingest(GITLAB_DOCS, files)
    for rel in files:
        assert_inert(render_sop((GITLAB_DOCS / rel).read_text(encoding="utf-8"), rel).html)


def test_links_to_other_sops_open_their_console_view() -> None:
    html = render_sop("See [new phone](okta-verify-new-phone.md#steps) and [x](../ops/a.md).\n", "access/b.md").html
    assert 'href="/sop/access/okta-verify-new-phone.md#steps"' in html
    assert 'href="/sop/ops/a.md"' in html


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("../secret.md", InvalidSopPathError),
        ("access/../../secret.md", InvalidSopPathError),
        ("/etc/passwd.md", InvalidSopPathError),
        ("access/notes.txt", InvalidSopPathError),
        (".hidden/a.md", InvalidSopPathError),
        ("a\\..\\b.md", InvalidSopPathError),
        ("a\x00.md", InvalidSopPathError),
        ("", InvalidSopPathError),
        ("missing.md", SopNotFoundError),
        ("out.md", SopNotFoundError),  # a symlink that leads outside the KB
    ],
)
def test_paths_that_escape_the_kb_are_refused(tmp_path: Path, path: str, error: type[Exception]) -> None:
    root = write_kb(tmp_path / "kb", {"a.md": sop("A-1", "A", "## S\n\nx")})
    secret = write_kb(tmp_path / "outside", {"secret.md": "# secret\n"}) / "secret.md"
    os.symlink(secret, root / "out.md")
    with pytest.raises(error) as caught:
        load_sop_view(root, path, max_bytes=10_000)
    assert "SOP" in str(caught.value)


def test_a_good_path_resolves_inside_the_kb_and_lists_its_front_matter(tmp_path: Path) -> None:
    root = write_kb(tmp_path / "kb", {"t/a.md": sop("A-1", "Alpha", "## S\n\nx"), "README.md": "# not an SOP\n"})
    assert resolve_sop_path(root, "t/a.md") == (root / "t/a.md").resolve()
    [summary] = list_sops(root, max_bytes=10_000, ignore=("README.md",))
    assert (summary.path, summary.title, summary.team, summary.status) == ("t/a.md", "Alpha", "uops-test", "active")
    assert str(summary.last_reviewed) == "2026-10-01" and str(summary.review_due) == "2026-12-30"
    with pytest.raises(SopNotFoundError):
        load_sop_view(root, "README.md", max_bytes=10_000, ignore=("README.md",))
