"""Search filters: team, tags, product, status. Drafts and deprecated SOPs are out unless asked for."""

from __future__ import annotations

from typing import Any

from sopilot.core.errors import InvalidQueryError

# Accepted names -> the metadata field they filter on.
FIELDS = {
    "team": "owner",
    "owner": "owner",
    "tag": "tags",
    "tags": "tags",
    "product": "products",
    "products": "products",
    "status": "status",
}
STATUSES = ("active", "draft", "deprecated")
DEFAULT_STATUSES = ("active",)


def normalize_filters(raw: dict[str, Any] | None) -> dict[str, list[str]]:
    """Validated filters keyed by metadata field; ``status`` defaults to active SOPs only."""
    filters: dict[str, list[str]] = {}
    for name, value in (raw or {}).items():
        field = FIELDS.get(str(name).lower())
        if field is None:
            raise InvalidQueryError(
                f"unknown filter {name!r}: filter on {', '.join(sorted({'team', 'tags', 'product', 'status'}))}"
            )
        values = value if isinstance(value, list | tuple | set) else [value]
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise InvalidQueryError(f"filter {name!r} needs one or more non-empty text values, got {value!r}")
        filters.setdefault(field, []).extend(v.strip() for v in values)
    statuses = filters.setdefault("status", list(DEFAULT_STATUSES))
    if "all" in statuses:
        filters["status"] = statuses = list(STATUSES)
    bad = [s for s in statuses if s not in STATUSES]
    if bad:
        raise InvalidQueryError(f"unknown status {bad[0]!r}: choose from {', '.join(STATUSES)} or all")
    return filters


def chroma_where(filters: dict[str, list[str]]) -> dict[str, Any] | None:
    """The same filters as a Chroma ``where`` clause (list fields match any of the values)."""
    clauses: list[dict[str, Any]] = []
    for field, values in filters.items():
        if field == "status" and set(values) >= set(STATUSES):
            continue
        if field in ("tags", "products"):
            options = [{field: {"$contains": v}} for v in values]
            clauses.append(options[0] if len(options) == 1 else {"$or": options})
        else:
            clauses.append({field: {"$in": list(values)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
