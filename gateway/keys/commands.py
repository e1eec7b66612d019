"""`gateway keys ...`: create, list, show, update, disable, enable and delete keys from a shell.

Writes the database directly (DATABASE_URL) and, when REDIS_URL is set, nudges running
gateways; without it they still see the change within their refresh interval.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import msgspec
from sqlalchemy import pool
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.commands import CommandError, database_url, reported
from gateway.db.urls import is_sqlite, prepare_sqlite_path
from gateway.keys.hashing import label_of
from gateway.keys.keyring import changes_channel
from gateway.keys.preferences import preferences_json
from gateway.keys.record import LIMIT_RESETS, ApiKey
from gateway.keys.refresh import announce
from gateway.keys.schemas import KeyPatch, KeySpec
from gateway.keys.store import KeyStore
from gateway.redis_options import background_redis
from gateway.settings import RedisSettings
from routing.preferences import MODES, ProviderPreferences

_T = TypeVar("_T")
NONE = "none"  # given to `update`, clears an optional setting
CLEAR = object()  # what a "none" option parses to
_encode = msgspec.json.Encoder(decimal_format="number").encode


def _money(text: str) -> object:
    if text == NONE:
        return CLEAR
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not a decimal amount: {text!r}") from exc


def _per_minute(text: str) -> object:
    if text == NONE:
        return CLEAR
    try:
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from exc


def _mode(text: str) -> object:
    if text == NONE:
        return CLEAR
    if text not in MODES:
        raise argparse.ArgumentTypeError(f"mode must be one of {', '.join(MODES)} or none")
    return text


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _key_options(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    parser.add_argument("--name", required=creating, help="what the key is for")
    parser.add_argument(
        "--limit-usd", type=_money, help="spend limit in USD per reset period ('none': unlimited)"
    )
    parser.add_argument("--limit-reset", choices=LIMIT_RESETS, help="when the limit starts afresh")
    parser.add_argument("--rpm", type=_per_minute, help="requests per minute ('none': unlimited)")
    parser.add_argument("--tpm", type=_per_minute, help="tokens per minute ('none': unlimited)")
    parser.add_argument("--mode", type=_mode, help=f"default routing mode: {', '.join(MODES)}")
    parser.add_argument(
        "--pin-mode",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the key's mode wins over a request's :mode suffix and provider.sort",
    )
    parser.add_argument("--only", type=_names, help="provider allowlist, comma-separated")
    parser.add_argument("--ignore", type=_names, help="providers never used, comma-separated")


_FIELDS = (
    ("name", "name"),
    ("limit_usd", "limit"),
    ("limit_reset", "limit_reset"),
    ("rpm", "requests_per_minute"),
    ("tpm", "tokens_per_minute"),
    ("mode", "mode"),
    ("pin_mode", "pin_mode"),
)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The key fields the options set; a 'none' option sets its field to null."""
    fields: dict[str, Any] = {}
    for option, field in _FIELDS:
        value = getattr(args, option)
        if value is not None:
            fields[field] = None if value is CLEAR else value
    if args.only is not None or args.ignore is not None:
        fields["provider"] = ProviderPreferences(only=args.only or None, ignore=args.ignore or None)
    return fields


def _row(key: ApiKey) -> dict[str, Any]:
    rate = key.rate_limit
    return {
        "id": key.id,
        "name": key.name,
        "label": label_of(key.prefix),
        "disabled": key.disabled,
        "limit": key.limit,
        "limit_reset": key.limit_reset,
        "requests_per_minute": rate.requests_per_minute,
        "tokens_per_minute": rate.tokens_per_minute,
        "mode": key.default_mode,
        "pin_mode": key.pin_mode,
        "provider": None if key.provider is None else preferences_json(key.provider),
        "created_at": key.created_at.isoformat(),
    }


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")


def _show(key: ApiKey, as_json: bool) -> None:
    if as_json:
        _write(_encode({"data": _row(key)}).decode())
        return
    limit = "unlimited" if key.limit is None else f"${key.limit} {key.limit_reset}"
    state = "disabled" if key.disabled else "active"
    _write(f"{key.id}  {label_of(key.prefix)}  {state}  {limit}  {key.name}")


async def _with_store(database_url: str, action: Callable[[KeyStore], Awaitable[_T]]) -> _T:
    prepare_sqlite_path(database_url)
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    try:
        if is_sqlite(database_url):
            from gateway.ledger.migrate import upgrade_engine

            await upgrade_engine(engine)  # the embedded default keeps its schema current itself
        return await action(KeyStore(engine))
    except SQLAlchemyError as exc:
        raise CommandError(
            f"database error ({type(exc).__name__}); is it migrated? run `gateway migrate`"
        ) from exc
    finally:
        await engine.dispose()


async def _announce() -> None:
    """Nudge running gateways over Redis, if there is one; they poll the database anyway."""
    settings = RedisSettings()
    if not settings.redis_url:
        return
    redis = background_redis(settings.redis_url)
    try:
        await announce(redis, changes_channel(settings.redis_prefix))
    finally:
        await redis.aclose()


def _write_key(args: argparse.Namespace, action: Callable[[KeyStore], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        result = await _with_store(database_url(args), action)
        if result is not None:
            await _announce()
        return result

    return asyncio.run(run())


def _create(args: argparse.Namespace) -> int:
    try:
        spec = msgspec.convert(_given(args), KeySpec)
    except msgspec.ValidationError as exc:
        raise CommandError(f"invalid key: {exc}") from exc
    key, minted = _write_key(args, lambda store: store.create(spec))
    if args.json:
        _write(_encode({"data": _row(key), "key": minted.secret}).decode())
    else:
        _show(key, as_json=False)
        _write(f"secret (shown once; store it now): {minted.secret}")
    return 0


def _list(args: argparse.Namespace) -> int:
    listed = asyncio.run(_with_store(database_url(args), lambda store: store.list_keys()))
    if args.json:
        _write(_encode({"data": [_row(key) for key in listed]}).decode())
    else:
        for key in listed:
            _show(key, as_json=False)
    return 0


def _show_one(args: argparse.Namespace) -> int:
    key = asyncio.run(_with_store(database_url(args), lambda store: store.get(args.key_id)))
    if key is None:
        raise CommandError(f"no key {args.key_id!r}")
    _show(key, args.json)
    return 0


def _change(args: argparse.Namespace, patch: KeyPatch) -> int:
    async def change(store: KeyStore) -> ApiKey | None:
        try:
            return await store.update(args.key_id, patch)
        except ValueError as exc:
            raise CommandError(f"invalid key: {exc}") from exc

    key = _write_key(args, change)
    if key is None:
        raise CommandError(f"no key {args.key_id!r}")
    _show(key, args.json)
    return 0


def _update(args: argparse.Namespace) -> int:
    try:
        patch = msgspec.convert(_given(args), KeyPatch)
    except msgspec.ValidationError as exc:
        raise CommandError(f"invalid key: {exc}") from exc
    return _change(args, patch)


def _disable(args: argparse.Namespace) -> int:
    return _change(args, KeyPatch(disabled=True))


def _enable(args: argparse.Namespace) -> int:
    return _change(args, KeyPatch(disabled=False))


def _delete(args: argparse.Namespace) -> int:
    key = _write_key(args, lambda store: store.delete(args.key_id))
    if key is None:
        raise CommandError(f"no key {args.key_id!r}")
    _write(f"deleted {key.id}")
    return 0


def add_subcommands(keys: argparse.ArgumentParser) -> None:
    """`gateway keys <create|list|show|update|disable|enable|delete>`."""
    sub = keys.add_subparsers(dest="keys_command", required=True)

    def command(
        name: str, help_text: str, func: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text)
        parser.add_argument("--database-url", default=None, help="default: DATABASE_URL")
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(func=reported("keys", func))
        return parser

    _key_options(command("create", "create a key; prints its secret once", _create), creating=True)
    command("list", "list keys (deleted ones are not listed)", _list)
    for name, help_text, func in (
        ("show", "show one key", _show_one),
        ("disable", "disable a key (refused by every gateway within a second)", _disable),
        ("enable", "enable a disabled key", _enable),
        ("delete", "delete a key for good", _delete),
    ):
        command(name, help_text, func).add_argument("key_id")
    update = command("update", "change a key's name, limits or routing defaults", _update)
    update.add_argument("key_id")
    _key_options(update, creating=False)
