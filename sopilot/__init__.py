"""SOPilot: an SOP knowledge base with AI-assisted answering for 24/7 user-operations teams.

The cross-cutting package: settings, the shared vocabulary (types), errors and the ``sopilot`` CLI.
The pipeline itself lives in the ``ingest``, ``retrieval``, ``api`` and ``eval`` packages.
"""

__version__ = "0.1.0"
