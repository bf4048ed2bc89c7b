"""Front matter: validation, errors with lines, lenient where authors are."""

from sopilot.ingest.frontmatter import split_front_matter


def test_valid_front_matter_and_body_offset() -> None:
    text = "---\nid: A-1\ntitle: T\ntags: [api, 429]\nstatus: draft\nescalation:\n  team: X\n---\n# T\n"
    fm, problem = split_front_matter(text, "a.md")
    assert problem is None and fm is not None
    assert fm.data.tags == ["api", "429"] and fm.data.status == "draft" and fm.end_line == 8
    assert fm.data.escalation is not None and fm.data.escalation.team == "X"


def test_keys_are_case_insensitive_and_empty_description_is_fine() -> None:
    fm, problem = split_front_matter("---\nTitle: Software\ndescription:\n---\n", "a.md")
    assert problem is None and fm is not None and fm.data.title == "Software" and fm.data.description == ""


def test_broken_yaml_reports_line() -> None:
    _, problem = split_front_matter("---\nid: A\ntitle: [unclosed\nowner: x\n---\n", "a.md")
    assert problem is not None and problem.code == "front-matter-yaml"
    assert problem.line is not None and problem.line >= 3


def test_invalid_value_names_the_key() -> None:
    _, problem = split_front_matter("---\nid: A\nstatus: archived\n---\n", "a.md")
    assert problem is not None and problem.code == "front-matter-invalid"
    assert "status" in problem.message and problem.line == 3


def test_unclosed_front_matter() -> None:
    _, problem = split_front_matter("---\nid: A\n# Title\n", "a.md")
    assert problem is not None and problem.code == "front-matter-unclosed"


def test_no_front_matter_is_allowed() -> None:
    fm, problem = split_front_matter("# Title\n", "a.md")
    assert problem is None and fm is not None and fm.end_line == 0
