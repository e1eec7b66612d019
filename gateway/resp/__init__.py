"""A lean pipelined Redis client for the request path: RESP over a few multiplexed connections.

Not a general client: no blocking commands, pub/sub or cluster; background users keep redis-py,
and Cluster and Sentinel deployments reach the request path through redis-py (`Commands`).
`address` parses the URL, `connection` is one socket and the error tree, `client` multiplexes
commands over a few connections, `batch` sends several owners' commands in one round trip and
`script` names a Lua script (its source in a `.lua` file) for EVALSHA.
"""

from __future__ import annotations

from gateway.resp.address import CONNECT_TIMEOUT_S, REPLY_TIMEOUT_S, Address
from gateway.resp.batch import Batch
from gateway.resp.client import CONNECTIONS, FAIL_FAST_S, Commands, RespClient
from gateway.resp.command import Arg, Command
from gateway.resp.connection import (
    ConnectionFailed,
    FailingFast,
    ReplyError,
    ReplyTimeout,
    RespError,
)
from gateway.resp.script import Script, lua_source

__all__ = [
    "CONNECTIONS",
    "CONNECT_TIMEOUT_S",
    "FAIL_FAST_S",
    "REPLY_TIMEOUT_S",
    "Address",
    "Arg",
    "Batch",
    "Command",
    "Commands",
    "ConnectionFailed",
    "FailingFast",
    "ReplyError",
    "ReplyTimeout",
    "RespClient",
    "RespError",
    "Script",
    "lua_source",
]
