"""``sopilot serve``: the HTTP API under uvicorn, on loopback unless API keys exist."""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import sys
import tempfile

from sopilot.cli.common import add_common, load_settings, quiet_libraries
from sopilot.core.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API (docs/api.md)")
    p.add_argument("--host", help="address to bind (default SOPILOT_HOST or 127.0.0.1; a public one needs keys)")
    p.add_argument("--port", type=int, help="port (default SOPILOT_PORT or 8000)")
    p.add_argument("--workers", type=int, help="server processes, each loading the models once (default 1)")
    add_common(p, json_flag=False)
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys_required: bool) -> str:
    """What to tell the operator about the bind; refuses a public address when no key exists."""
    if keys_required:
        return f"API keys required on {host}"
    if not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host} without API keys: anyone who can reach it could read the SOPs and "
            "re-index. Create a key first (`sopilot keys create NAME --role admin`), or bind 127.0.0.1"
        )
    return "no API keys configured: serving on loopback only, and every caller acts as admin"


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from sopilot.api.keys import KeyStore, keys_path

    settings = load_settings(args)
    update = {name: getattr(args, name) for name in ("host", "port", "workers") if getattr(args, name) is not None}
    settings = settings.model_validate({**settings.model_dump(), **update}) if update else settings
    quiet_libraries()
    keys = KeyStore(keys_path(settings.index_dir))
    try:
        note = check_bind(settings.host, keys.required())
    finally:
        keys.close()
    # Each worker builds its own app from the environment (uvicorn's factory): hand the flags down that way.
    os.environ["SOPILOT_KB_DIR"] = str(settings.kb_dir.resolve())
    os.environ["SOPILOT_INDEX_DIR"] = str(settings.index_dir.resolve())
    metrics_dir = None
    if settings.workers > 1:
        metrics_dir = tempfile.mkdtemp(prefix="sopilot-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    print(f"{note}", file=sys.stderr)
    if settings.chroma_url:
        print(
            f"a replica of the Chroma server at {settings.chroma_url} (collection {settings.collection!r}): ingests "
            f"through any replica are served here within {settings.marker_poll_seconds:g} s (docs/deploy.md)",
            file=sys.stderr,
        )
    print(
        f"SOPilot API on http://{settings.host}:{settings.port}/ ({settings.workers} worker(s); schema at /docs)",
        file=sys.stderr,
    )
    try:
        uvicorn.run(
            "sopilot.api.app:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="warning" if args.quiet else "info",
            access_log=False,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
