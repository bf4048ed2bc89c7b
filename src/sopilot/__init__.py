"""SOPilot: an SOP knowledge base with AI-assisted answering for 24/7 user-operations teams.

One import name; its subpackages are the stages of the data flow, each importing only those below it:
``core`` (types, settings, errors) at the bottom, then ``index`` (embedder, Chroma store, lexical index),
``ingest`` and ``retrieval``, ``draft``, ``eval``, and the entry points ``api`` and ``cli`` on top
(docs/architecture.md).
"""

__version__ = "0.1.0"
