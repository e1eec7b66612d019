"""JSON as the gateway writes it: one msgspec encoder for every body, and exact decimals (money)
as plain JSON numbers.

Not the shape of any answer (`gateway.chat.relay`, the views of each package).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

encode = msgspec.json.Encoder().encode


def json_number(value: Decimal) -> msgspec.Raw:
    """An exact decimal as a plain JSON number (`0.00000075`, never `7.5E-7`)."""
    return msgspec.Raw(format(value.normalize(), "f").encode())


def json_numbers(tree: dict[str, Any]) -> dict[str, Any]:
    """`tree` with every decimal, at any depth of nested dicts, as a plain JSON number."""
    return {
        k: json_number(v)
        if isinstance(v, Decimal)
        else json_numbers(v)
        if isinstance(v, dict)
        else v
        for k, v in tree.items()
    }
