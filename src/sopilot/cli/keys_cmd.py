"""``sopilot keys create|list|revoke``: API keys of the server, stored hashed in the index folder."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from sopilot.cli.common import add_common, load_settings, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="create, list and revoke the API's keys")
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = keys.add_parser("create", help="a new key with a role; the key is printed once")
    create.add_argument("name", help="whose or what the key is (a person, a bot, a Prometheus)")
    create.add_argument("--role", required=True, choices=["agent", "author", "evaluator", "admin"])
    add_common(create)
    create.set_defaults(func=run_create)
    listing = keys.add_parser("list", help="every key: id, name, role, created, revoked")
    add_common(listing)
    listing.set_defaults(func=run_list)
    revoke = keys.add_parser("revoke", help="revoke a key by its id (running servers refuse it at once)")
    revoke.add_argument("key_id")
    add_common(revoke)
    revoke.set_defaults(func=run_revoke)


def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from sopilot.api.keys import KeyStore, keys_path

    return KeyStore(keys_path(load_settings(args).index_dir))


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else ""


def run_create(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        key, plain = store.create(args.name, args.role)
    finally:
        store.close()
    if args.json:
        print_json({"key_id": key.key_id, "name": key.name, "role": key.role, "key": plain})
    else:
        print(plain)
        print(f"key {key.key_id} ({key.role}) for {key.name}: shown once, store it now", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        keys = store.list()
    finally:
        store.close()
    if args.json:
        print_json(
            [
                {"key_id": k.key_id, "name": k.name, "role": k.role, "created": k.created, "revoked": k.revoked}
                for k in keys
            ]
        )
        return 0
    if not keys:
        print("no keys: the server serves loopback only, without keys", file=sys.stderr)
    for k in keys:
        state = f"revoked {_when(k.revoked)}" if k.revoked else "active"
        print(f"{k.key_id}  {k.role:<9}  {k.name}  created {_when(k.created)}  {state}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        key = store.revoke(args.key_id)
    finally:
        store.close()
    if args.json:
        print_json({"key_id": key.key_id, "revoked": key.revoked})
    else:
        print(f"revoked {key.key_id} ({key.role}, {key.name})")
    return 0
