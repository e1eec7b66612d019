"""A Lua script of the lean RESP client, called by EVALSHA, and where its source is read from.

Sources live in `.lua` files beside the module that runs them (packaged as package data) and are
read once, at import. Not an interpreter: Redis runs the script; this only names it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from gateway.resp.command import Arg, Command

if TYPE_CHECKING:
    from gateway.resp.client import Commands


def lua_source(package: str, *names: str) -> str:
    """The text of the `.lua` files `names` (paths relative to `package`, `/`-separated) joined
    in order: a shared prelude first, then the script."""
    folder = files(package)
    return "".join(folder.joinpath(*name.split("/")).read_text("utf-8") for name in names)


class Script:
    """A Lua script called by EVALSHA with its SHA computed here; on NOSCRIPT (a restarted or
    flushed Redis) the client sends it once by EVAL, which also loads it again."""

    def __init__(self, client: Commands, source: str) -> None:
        self._client = client
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def command(self, keys: Sequence[Arg], args: Sequence[Arg]) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    async def __call__(self, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        return await self._client.execute(*self.command(keys, args))
