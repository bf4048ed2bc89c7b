"""Errors that reach users. Each message names the problem and the fix."""

from __future__ import annotations


class SopilotError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with, ``http_status`` what the API answers."""

    exit_code = 2
    http_status = 500


class ConfigError(SopilotError):
    """Settings or arguments that cannot work."""

    http_status = 400


class EmbedderMismatchError(SopilotError):
    """The index was built by another embedder; mixing vectors would give wrong results silently."""

    http_status = 409


class IndexNotFoundError(SopilotError):
    """Search was asked of an index that has not been built."""

    http_status = 404


class StoreUnavailableError(SopilotError):
    """The Chroma server cannot be reached."""

    http_status = 503


class InvalidQueryError(SopilotError):
    """A query or its options are not usable."""

    http_status = 422


class IngestRunningError(SopilotError):
    """Another ingest holds the index folder's lock; two at once would interleave their writes."""

    exit_code = 3
    http_status = 409


class IndexWriteError(SopilotError):
    """The index folder cannot be written (disk full, read-only, no permission); what it held stays usable."""

    http_status = 507
