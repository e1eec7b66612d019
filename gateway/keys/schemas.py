"""What an admin sends to create or change a key (admin API bodies and CLI flags alike).

Validated once here; `KeyStore` trusts them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

from gateway.db.types import InexactMoney, exact_money
from gateway.keys.record import LimitReset
from routing.preferences import Mode, ProviderPreferences

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
PerMinute = Annotated[int, msgspec.Meta(ge=1)]


def _check_limit(limit: Decimal | msgspec.UnsetType | None) -> None:
    if not isinstance(limit, Decimal):
        return
    try:
        exact_money(limit)
    except InexactMoney as exc:
        raise ValueError(f"limit: {exc}") from exc
    if limit < 0:
        raise ValueError("limit must not be negative")


class KeySpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A new key. `limit` is USD per `limit_reset` period (null: unlimited)."""

    name: Name
    limit: Decimal | None = None
    limit_reset: LimitReset | None = None  # null: "none", the limit never resets
    requests_per_minute: PerMinute | None = None
    tokens_per_minute: PerMinute | None = None
    mode: Mode | None = None  # the key's default mode
    pin_mode: bool = False  # the key's mode wins over a request's `:mode` suffix
    provider: ProviderPreferences | None = None  # preferences every request runs within
    disabled: bool = False

    def __post_init__(self) -> None:
        _check_limit(self.limit)
        if self.pin_mode and self.mode is None:
            raise ValueError("pin_mode needs a mode")


class KeyPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Changes to a key; fields left out stay as they are, null clears."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    limit: Decimal | msgspec.UnsetType | None = msgspec.UNSET
    limit_reset: LimitReset | msgspec.UnsetType | None = msgspec.UNSET
    requests_per_minute: PerMinute | msgspec.UnsetType | None = msgspec.UNSET
    tokens_per_minute: PerMinute | msgspec.UnsetType | None = msgspec.UNSET
    mode: Mode | msgspec.UnsetType | None = msgspec.UNSET
    pin_mode: bool | msgspec.UnsetType = msgspec.UNSET
    provider: ProviderPreferences | msgspec.UnsetType | None = msgspec.UNSET
    disabled: bool | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        _check_limit(self.limit)

    def changes(self) -> dict[str, object]:
        """The fields that were given, by name."""
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not msgspec.UNSET
        }
