"""The catalog: every endpoint (model, provider) the gateway may call, loaded from TOML.

Parsing and validation only; prices are turned into money by `providers.pricing`.
"""

from __future__ import annotations

import os
import string
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal, TypeVar

import msgspec

DEFAULT_CATALOG = Path(__file__).with_name("catalogs") / "gpt-oss-20b.toml"
_T = TypeVar("_T")
MAX_PRICE_DECIMALS = 6  # per 1M tokens: keeps per-token cost exact at 1e-12 USD


class CatalogError(ValueError):
    """The catalog file is unreadable or breaks the documented shape."""


class Price(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """USD per 1M tokens (and per request), exact decimals.

    The defaults serve code that builds prices; a catalog must name `prompt` and `completion`.
    """

    prompt: Decimal = Decimal(0)
    completion: Decimal = Decimal(0)
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    request: Decimal = Decimal(0)

    def effective_cache_read(self) -> Decimal:
        return self.prompt if self.cache_read is None else self.cache_read


class Endpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One (model, provider) pair: where to call it, what it costs, what it supports."""

    model: str
    provider: str
    base_url: str
    upstream_model: str
    context_length: int
    price: Price
    kind: Literal["openai", "llamacpp"] = "openai"
    api_key_env: str | None = None
    quantization: str = "unknown"
    max_completion_tokens: int | None = None
    data_collection: Literal["allow", "deny"] = "deny"
    zdr: bool = False
    supported_parameters: tuple[str, ...] = ()
    throughput: float | None = None  # advertised output tokens/s, used until measured
    latency_ms: float | None = None  # advertised time to first token, used until measured
    cache_ttl_s: float = 300.0  # how long the provider keeps a prompt cache warm
    max_concurrency: int | None = None  # e.g. llama.cpp slots
    spill_over: bool = True  # llamacpp: yield to others when every slot is busy
    headers: dict[str, str] = {}
    enabled: bool = True
    transport: Literal["http1", "httpx"] = "http1"  # httpx: HTTP/2, SOCKS, proxy auth schemes
    keepalive_s: float = 4.0  # reuse an idle connection at most this long (below server timeouts)
    ca_bundle: str | None = None  # PEM CAs to trust for this endpoint (else the gateway's)
    client_cert: str | None = None  # PEM client certificate for mutual TLS ...
    client_key: str | None = None  # ... and its key, when not in the same file

    @property
    def id(self) -> str:
        return f"{self.model}@{self.provider}"

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/")


class ModelInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    name: str
    context_length: int
    exacto: str | None = None  # the fixed provider for :exacto
    description: str = ""
    created: int = 0


class _CatalogFile(msgspec.Struct, forbid_unknown_fields=True):
    models: dict[str, dict[str, object]] = {}
    endpoints: list[dict[str, object]] = []


class Secret:
    """An upstream API key: usable, never printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class EndpointStatus:
    enabled: bool
    reason: str = ""


@dataclass(frozen=True)
class Catalog:
    models: dict[str, ModelInfo]
    endpoints: tuple[Endpoint, ...]
    status: dict[str, EndpointStatus]
    secrets: dict[str, Secret] = field(repr=False)
    by_model: dict[str, tuple[Endpoint, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        grouped: dict[str, list[Endpoint]] = {m: [] for m in self.models}
        for ep in self.endpoints:
            grouped.setdefault(ep.model, []).append(ep)
        object.__setattr__(self, "by_model", {m: tuple(eps) for m, eps in grouped.items()})

    def enabled(self, model: str) -> tuple[Endpoint, ...]:
        return tuple(ep for ep in self.by_model.get(model, ()) if self.status[ep.id].enabled)

    def secret_for(self, endpoint: Endpoint) -> Secret | None:
        return self.secrets.get(endpoint.id)


def load_catalog(path: str | Path | None = None, env: dict[str, str] | None = None) -> Catalog:
    """Read and validate a catalog file; endpoints whose key env var is unset are disabled."""
    path = Path(path) if path else DEFAULT_CATALOG
    env = dict(os.environ) if env is None else env
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"catalog {path} is not valid TOML: {exc}") from exc
    return parse_catalog(raw, env, source=str(path))


def parse_catalog(raw: dict[str, object], env: dict[str, str], source: str = "catalog") -> Catalog:
    try:
        doc = msgspec.convert(raw, _CatalogFile)
    except msgspec.ValidationError as exc:
        raise CatalogError(f"{source}: {exc}") from exc
    models: dict[str, ModelInfo] = {}
    for model_id, fields in doc.models.items():
        models[model_id] = _convert(
            ModelInfo, {"id": model_id, **fields}, source, f'models."{model_id}"'
        )
    endpoints: list[Endpoint] = []
    status: dict[str, EndpointStatus] = {}
    secrets: dict[str, Secret] = {}
    for i, fields in enumerate(doc.endpoints):
        _check_raw_price(fields, source, i)
        ep = _convert(Endpoint, fields, source, f"endpoints[{i}]")
        if ep.model not in models:
            raise CatalogError(
                f'{source}: endpoints[{i}] names model "{ep.model}", which has no [models] table'
            )
        if ep.id in status:
            raise CatalogError(
                f"{source}: endpoints[{i}] repeats provider {ep.provider!r} for model {ep.model!r}"
            )
        _check_price(ep, source, i)
        _check_sendable(ep, source, i)
        endpoints.append(ep)
        status[ep.id] = _status_of(ep, env, secrets)
    for model in models.values():
        if model.exacto and not any(
            e.provider == model.exacto for e in endpoints if e.model == model.id
        ):
            raise CatalogError(
                f'{source}: model "{model.id}" names exacto provider '
                f"{model.exacto!r}, which has no endpoint for it"
            )
    return Catalog(models=models, endpoints=tuple(endpoints), status=status, secrets=secrets)


def _status_of(ep: Endpoint, env: dict[str, str], secrets: dict[str, Secret]) -> EndpointStatus:
    if not ep.enabled:
        return EndpointStatus(False, "disabled in the catalog")
    if ep.api_key_env is None:
        return EndpointStatus(True)
    key = env.get(ep.api_key_env, "")
    if not key:
        return EndpointStatus(False, f"{ep.api_key_env} is not set")
    if not _sendable(key) or any(c.isspace() for c in key):
        # A trailing newline from `$(cat keyfile)` would fail every request to this endpoint.
        return EndpointStatus(
            False, f"{ep.api_key_env} holds whitespace or characters a header can't carry"
        )
    secrets[ep.id] = Secret(key)
    return EndpointStatus(True)


def _convert(cls: type[_T], fields: object, source: str, where: str) -> _T:
    # strict: "32768" is not an int nor "true" a bool; decimal strings still become Decimal
    try:
        return msgspec.convert(fields, cls, strict=True)
    except msgspec.ValidationError as exc:
        raise CatalogError(f"{source}: {where}: {exc}") from exc


def _check_raw_price(fields: dict[str, object], source: str, i: int) -> None:
    """Prices as decimal strings, prompt and completion always named: a price left out would
    read as free and win `:floor`, and a float would not be exact."""
    price = fields.get("price")
    if isinstance(price, dict):
        missing = [name for name in ("prompt", "completion") if name not in price]
        if missing:
            raise CatalogError(
                f"{source}: endpoints[{i}].price needs {' and '.join(missing)} "
                '(USD per 1M tokens as decimal strings; write "0" for a free endpoint)'
            )
        for name, value in price.items():
            if isinstance(value, float):
                raise CatalogError(
                    f"{source}: endpoints[{i}].price.{name} must be a decimal "
                    f'string such as "{value}", not a float'
                )


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)  # RFC 9110


def _sendable(value: str) -> bool:
    """Fits an HTTP/1.1 header value: latin-1, no CR, LF or other control character but tab."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value)


def _check_sendable(ep: Endpoint, source: str, i: int) -> None:
    """Headers and URL go on the wire as they are: refuse at load what can't be sent, rather
    than fail every request to the endpoint."""
    for name, value in ep.headers.items():
        if not name or not set(name) <= _TOKEN_CHARS:
            raise CatalogError(f"{source}: endpoints[{i}].headers: {name!r} is not a header name")
        if not _sendable(value) or value != value.strip():
            raise CatalogError(
                f"{source}: endpoints[{i}].headers.{name}: the value has a line break, a control "
                "character, surrounding whitespace or a character outside latin-1"
            )
    if not ep.base_url.isascii() or any(c.isspace() or ord(c) < 32 for c in ep.base_url):
        raise CatalogError(
            f"{source}: endpoints[{i}].base_url must be ASCII without whitespace or control "
            "characters"
        )


def _check_price(ep: Endpoint, source: str, i: int) -> None:
    for name in ("prompt", "completion", "cache_read", "cache_write", "request"):
        value: Decimal | None = getattr(ep.price, name)
        if value is None:
            continue
        exponent = value.as_tuple().exponent
        if value < 0 or not isinstance(exponent, int) or -exponent > MAX_PRICE_DECIMALS:
            raise CatalogError(
                f"{source}: endpoints[{i}].price.{name} = {value}: must be "
                f"non-negative with at most {MAX_PRICE_DECIMALS} decimals"
            )
