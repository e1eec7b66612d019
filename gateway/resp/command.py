"""A Redis command as the lean RESP client sends it: its argument types and their wire bytes.

Not a parser: replies are read by `hiredis.Reader` in `gateway.resp.connection`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import hiredis

Arg = bytes | str | int | float
Command = tuple[Arg, ...]

pack = cast(Callable[[Command], bytes], hiredis.pack_command)  # its stub says a 1-tuple
