"""An SOP's Markdown as safe HTML: markdown-it-py renders it, nh3 sanitizes what comes out.

Raw HTML in an SOP is not interpreted: it is written out escaped, so ``<script>`` or ``<img onerror=...>``
reach the page as text (HTML comments are left out). nh3 then keeps only an allowlist of tags and attributes (no
``on*`` attribute, no ``style`` beyond table alignment, no ``javascript:`` URL), whatever the renderer let
through. Headings get the ids the ingest gives their sections (``sopilot.ingest.markdown``), custom
``{#id}`` anchors included, so a passage's link ``/sop/{path}#{anchor}`` lands on its section. Links to other
SOPs are pointed at their console view; images become links, so viewing an SOP never loads anything from
elsewhere.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.token import Token

from sopilot.ingest.frontmatter import blank_front_matter
from sopilot.ingest.markdown import parse_outline

SOP_VIEW_PREFIX = "/sop/"  # the console's page for one SOP (api/routes/console.py)
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
ALLOWED_TAGS = _HEADINGS | {
    "p", "br", "hr", "ul", "ol", "li", "blockquote", "pre", "code", "em", "strong", "s", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    **{h: {"id"} for h in _HEADINGS},
    "a": {"href", "title"},
    "ol": {"start"},
    "th": {"style"},
    "td": {"style"},
}
URL_SCHEMES = {"http", "https", "mailto"}
_CUSTOM_ID = re.compile(r"\s*\{#[A-Za-z0-9_-]+\}\s*$")
_MARKDOWN_LINK = re.compile(r"\.(md|markdown)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RenderedHeading:
    level: int
    text: str
    anchor: str


@dataclass(frozen=True, slots=True)
class RenderedSop:
    html: str  # sanitized
    headings: tuple[RenderedHeading, ...]


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    # Parsed with html on, as the ingest parses (an HTML block changes where fences and headings are), but
    # raw HTML is written out as escaped text, never interpreted.
    md = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")
    md.add_render_rule("html_block", _html_block_as_text)
    md.add_render_rule("html_inline", _html_inline_as_text)
    return md


def _html_block_as_text(self: object, tokens: list[Token], idx: int, options: object, env: object) -> str:
    content = tokens[idx].content
    stripped = content.strip()
    if stripped.startswith("<!--") and stripped.endswith("-->"):
        return ""  # an author's comment, hidden as any Markdown viewer hides it
    return f"<pre>{escapeHtml(content)}</pre>\n"


def _html_inline_as_text(self: object, tokens: list[Token], idx: int, options: object, env: object) -> str:
    return escapeHtml(tokens[idx].content)


def render_sop(text: str, path: str) -> RenderedSop:
    """Sanitized HTML of one SOP file's text (front matter left out), with its sections' anchors as ids.

    ``path`` is the SOP's path relative to the KB root; relative links are resolved against its folder.
    """
    body = blank_front_matter(text)  # keeps line numbers, so headings match the ingest's outline by line
    outline = parse_outline(body)
    anchors = {h.line: h for h in outline.headings}
    tokens = _renderer().parse(body)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.level == 0 and tok.map is not None:
            heading = anchors.get(tok.map[0])
            if heading is not None:
                tok.attrSet("id", heading.anchor)
                _strip_custom_id(tokens[i + 1])
        elif tok.type == "inline":
            _rewrite_links(tok, path)
    html = _renderer().renderer.render(tokens, _renderer().options, {})
    headings = tuple(RenderedHeading(h.level, h.text, h.anchor) for h in outline.headings)
    return RenderedSop(sanitize(html), headings)


def sanitize(html: str) -> str:
    """Only the allowlisted tags and attributes survive; scripts and styles go with their content."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        filter_style_properties={"text-align"},
        link_rel="noopener noreferrer",
    )


def sop_view_url(path: str, anchor: str = "") -> str:
    """The console's URL of an SOP (and one of its sections)."""
    url = SOP_VIEW_PREFIX + quote(path)
    return f"{url}#{quote(anchor)}" if anchor else url


def _strip_custom_id(inline: Token) -> None:
    """Drop a trailing ``{#id}`` from a heading's text: the id is the anchor, not words to show."""
    inline.content = _CUSTOM_ID.sub("", inline.content)
    texts = [child for child in inline.children or [] if child.type == "text"]
    if texts:
        texts[-1].content = _CUSTOM_ID.sub("", texts[-1].content)


def _rewrite_links(inline: Token, path: str) -> None:
    rewritten: list[Token] = []
    for child in inline.children or []:
        if child.type == "link_open":
            child.attrSet("href", _link_target(str(child.attrGet("href") or ""), path))
            rewritten.append(child)
        elif child.type == "image":
            # An image would load on sight; a link to it loads only when the agent asks.
            src = str(child.attrGet("src") or "")
            alt = "".join(c.content for c in child.children or []) or src
            rewritten += [
                Token("link_open", "a", 1, attrs={"href": _link_target(src, path)}),
                Token("text", "", 0, content=f"image: {alt}"),
                Token("link_close", "a", -1),
            ]
        else:
            rewritten.append(child)
    inline.children = rewritten


def _link_target(href: str, path: str) -> str:
    """Relative links to Markdown files become console views of those SOPs; others stay as they are."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or not parts.path or not _MARKDOWN_LINK.search(parts.path):
        return href
    if parts.path.startswith("/"):
        return href
    target = posixpath.normpath(posixpath.join(posixpath.dirname(path), parts.path))
    if target.startswith("../") or target == "..":
        return href
    return sop_view_url(target, parts.fragment)
