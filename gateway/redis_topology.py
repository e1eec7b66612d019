"""Which Redis deployment REDIS_URL names, and the clients for it: one Redis (`redis://`,
`rediss://`, `unix://`), a Redis Cluster (`redis+cluster://h:p,h:p/`) or a Sentinel-watched
primary (`redis+sentinel://h:p,h:p/<master-name>[/<db>]`); `rediss+...` for TLS.

Not the place for key names or what the clients are used for.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from gateway.resp import Commands, RespClient
from gateway.resp.address import Address

Kind = Literal["single", "cluster", "sentinel"]
if TYPE_CHECKING:
    BackgroundRedis = Redis | RedisCluster  # what the background (ledger writer, stats...) holds
else:  # Litestar reads `Resources` (a dependency) with msgspec, which takes no union of classes
    BackgroundRedis = Any

_CLUSTER_OPTIONS = frozenset(inspect.signature(RedisCluster.__init__).parameters) - {"db", "self"}
CLUSTER_PORT = 6379
SENTINEL_PORT = 26379
# Options for the Sentinel daemons themselves (the prefect/docket URL convention); every other
# query option applies to the data nodes, as in a `redis://` URL.
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")


@dataclass(frozen=True, slots=True)
class Topology:
    """REDIS_URL parsed: the kind of deployment, its seed nodes, and the data-node options as a
    `redis://` URL (`node_url`) that both redis-py and the lean client's `Address` read."""

    kind: Kind
    url: str  # as given
    nodes: tuple[tuple[str, int], ...] = ()  # cluster seeds or sentinels; () for single
    master: str = ""  # the Sentinel service name
    node_url: str = ""  # scheme, credentials, db and options for a data node
    sentinel_options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_url(cls, url: str) -> Topology:
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("redis", "rediss", "unix"):
            Address.from_url(url)  # refuses a bad option or scheme in one line, at start
            return cls("single", url, node_url=url)
        base, _, plus = scheme.partition("+")
        if base not in ("redis", "rediss") or plus not in ("cluster", "sentinel"):
            raise ValueError(
                f"unsupported Redis URL scheme {scheme!r}: redis(s), unix, "
                "redis(s)+cluster or redis(s)+sentinel"
            )
        kind: Kind = "cluster" if plus == "cluster" else "sentinel"
        rest = url.split("://", 1)[1]
        netloc, _, path_query = rest.partition("/")
        path, _, query = path_query.partition("?")
        if "?" in netloc:  # no path: redis+cluster://h:p?options
            netloc, _, query = netloc.partition("?")
        userinfo, _, hosts = netloc.rpartition("@")
        default_port = CLUSTER_PORT if kind == "cluster" else SENTINEL_PORT
        nodes = tuple(_host_port(item, default_port) for item in hosts.split(",") if item)
        if not nodes:
            raise ValueError(f"Redis URL {scheme}://: name at least one host:port")
        options = parse_qsl(query, keep_blank_values=True)
        sentinel_options = tuple((k, v) for k, v in options if k in _SENTINEL_OPTIONS)
        options = [(k, v) for k, v in options if k not in _SENTINEL_OPTIONS]
        segments = [unquote(s) for s in path.split("/") if s]
        master, db = "", "0"
        if kind == "cluster":
            if sentinel_options:
                raise ValueError("Redis URL options sentinel_*: only for redis+sentinel://")
            if segments not in ([], ["0"]):
                raise ValueError("Redis URL redis+cluster://: a cluster has only database 0")
        else:
            if not segments or len(segments) > 2:
                raise ValueError(
                    "Redis URL redis+sentinel://: give the master's name, and optionally a "
                    "database: redis+sentinel://h:26379,h:26379/<master-name>/<db>"
                )
            master = segments[0]
            db = segments[1] if len(segments) > 1 else "0"
            if not db.isdigit():
                raise ValueError(f"Redis URL redis+sentinel://: database {db!r} is not a number")
        auth = f"{userinfo}@" if userinfo else ""
        host, port = nodes[0]
        shown = f"[{host}]" if ":" in host else host
        node_url = f"{base}://{auth}{shown}:{port}/{db}"
        if options:
            node_url += "?" + urlencode(options)
        Address.from_url(node_url)  # the same option checks as a plain URL
        return cls(kind, url, nodes, master, node_url, sentinel_options)

    def commands(self, **lean: Any) -> Commands:
        """The request path's client: the lean RESP client for one Redis, redis-py otherwise
        (`lean` are `RespClient` options; redis-py gets the same ~1 s timeouts)."""
        if self.kind == "single":
            return RespClient.from_url(self.url, **lean)
        from gateway.resp_redispy import CONNECTIONS, RedisPyCommands

        address = Address.from_url(self.node_url)
        defaults = {
            "socket_timeout": address.reply_timeout_s,
            "socket_connect_timeout": address.connect_timeout_s,
        }
        fixed = {
            # One try: a command that failed fails the request (the limiter answers 503, the
            # ledger spools); waiting through redis-py's backoff would hold every request.
            "retry": Retry(NoBackoff(), 0),
            "max_connections": CONNECTIONS,  # per node; RedisPyCommands keeps within it
        }
        return RedisPyCommands(self._client(defaults, fixed), connections=CONNECTIONS)

    def background(self, **options: Any) -> BackgroundRedis:
        """A redis-py client for background work (ledger writer, stats, key refresh, CLI)."""
        if self.kind == "single":
            return Redis.from_url(self.url, **options)
        return self._client(options, {})

    def _client(self, defaults: dict[str, Any], fixed: dict[str, Any]) -> BackgroundRedis:
        """`defaults` give way to the URL's own options; `fixed` don't."""
        kwargs = _node_kwargs(self.node_url)
        kwargs.update(_url_wins(defaults, self.node_url))
        kwargs.update(fixed)
        if self.kind == "cluster":
            # MOVED and ASK are followed whatever `retry` says. Pool knobs of a single-node
            # client that the cluster client lacks (`retry_on_timeout`, ...) are ignored, as
            # the README says of pool knobs.
            kwargs = {k: v for k, v in kwargs.items() if k in _CLUSTER_OPTIONS}
            seeds = [ClusterNode(host, port) for host, port in self.nodes]
            return RedisCluster(startup_nodes=seeds, **kwargs)
        sentinel_kwargs = {k: v for k, v in kwargs.items() if k.startswith(("socket_", "ssl"))}
        for name, value in self.sentinel_options:
            sentinel_kwargs[name.removeprefix("sentinel_")] = value
        sentinel = Sentinel(list(self.nodes), sentinel_kwargs=sentinel_kwargs)
        client: Redis = sentinel.master_for(self.master, redis_class=Redis, **kwargs)
        return client

    def __str__(self) -> str:
        if self.kind == "single":
            return str(Address.from_url(self.url))
        where = ",".join(f"{h}:{p}" for h, p in self.nodes)
        return f"{self.kind} {where}" + (f" master {self.master}" if self.master else "")


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(f"//{item}")
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError(f"Redis URL host {item!r}: bad port") from None
    if not parts.hostname:
        raise ValueError(f"Redis URL host {item!r}: no host name")
    return parts.hostname, port


def _node_kwargs(node_url: str) -> dict[str, Any]:
    """redis-py's own reading of the data-node URL: credentials, db, timeouts, TLS options."""
    kwargs = dict(parse_url(node_url))
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    connection_class = kwargs.pop("connection_class", None)
    if isinstance(connection_class, type) and issubclass(connection_class, SSLConnection):
        kwargs["ssl"] = True
    return kwargs


def _url_wins(defaults: dict[str, Any], node_url: str) -> dict[str, Any]:
    """Our defaults, except those the URL's query sets itself (as with `Redis.from_url`)."""
    given = {name for name, _ in parse_qsl(urlsplit(node_url).query)}
    return {k: v for k, v in defaults.items() if k not in given}
