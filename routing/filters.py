"""Provider preference filters: which endpoints a request may use, and why the others may not.

Pure functions over endpoint facts and the client's `provider` object; ordering is
`routing.scoring`. Contradictory preferences raise `ConflictingPreferences` before any filtering.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from routing.errors import ConflictingPreferences
from routing.facts import EndpointFacts
from routing.preferences import MaxPrice, Mode, ProviderPreferences, RouteRequest, Sort, SortBy

SORT_MODES: dict[SortBy, Mode] = {
    "price": "floor",
    "throughput": "nitro",
    "latency": "nitro",
    "exacto": "exacto",
}


NO_MAX_PRICE = MaxPrice()


def lowered(names: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(n.lower() for n in names) if names else ()


def sort_of(prefs: ProviderPreferences) -> Sort | None:
    sort = prefs.sort
    if sort is None or isinstance(sort, Sort):
        return sort
    return Sort(by=sort)


def check_conflicts(request: RouteRequest) -> None:
    """Refuse preferences that contradict each other or the mode (400)."""
    _provider_conflicts(request.preferences)
    _mode_conflicts(request)
    _price_conflicts(request.preferences)


def _provider_conflicts(prefs: ProviderPreferences) -> None:
    only, ignore, order = set(lowered(prefs.only)), set(lowered(prefs.ignore)), lowered(prefs.order)
    if prefs.only is not None and only and only <= ignore:
        raise ConflictingPreferences(
            "provider.only and provider.ignore exclude every provider between them",
            metadata={"only": sorted(only), "ignore": sorted(ignore)},
        )
    if order and not prefs.allow_fallbacks:
        allowed = [p for p in order if p not in ignore and (not only or p in only)]
        if not allowed:
            raise ConflictingPreferences(
                "provider.order with allow_fallbacks=false names only providers that "
                "provider.only/provider.ignore exclude",
                metadata={"order": list(order), "only": sorted(only), "ignore": sorted(ignore)},
            )


def _mode_conflicts(request: RouteRequest) -> None:
    prefs = request.preferences
    only = set(lowered(prefs.only))
    if request.mode == "exacto" and len(only) > 1:
        raise ConflictingPreferences(
            f"exacto routes to exactly one provider, but provider.only names {len(only)}",
            metadata={"only": sorted(only)},
        )
    sort = sort_of(prefs)
    by = sort.by if sort is not None else None
    if by is not None and request.mode_from_suffix and not _sort_fits(request.mode, by):
        raise ConflictingPreferences(
            f"the :{request.mode} model suffix contradicts provider.sort={by!r}",
            metadata={"mode": request.mode, "sort": by},
        )


def _price_conflicts(prefs: ProviderPreferences) -> None:
    max_price = prefs.max_price
    if max_price is None:
        return
    for name in ("prompt", "completion", "request"):
        value = getattr(max_price, name)
        if value is not None and value < 0:
            raise ConflictingPreferences(
                f"provider.max_price.{name} must not be negative",
                metadata={"max_price": name},
            )


def _sort_fits(mode: Mode, by: SortBy) -> bool:
    if mode == "floor":
        return by == "price"
    if mode == "nitro":
        return by in ("throughput", "latency")
    if mode == "exacto":
        return by == "exacto"
    return False  # balanced load-balances, exacto never reorders


def resolve_mode(request: RouteRequest) -> tuple[Mode, Sort | None]:
    """The mode that runs: a model suffix wins, then `provider.sort`, then the default."""
    sort = sort_of(request.preferences)
    if sort is None or sort.by is None or request.mode_from_suffix:
        return request.mode, sort
    return SORT_MODES[sort.by], sort


def _decimal(value: float | None) -> Decimal | None:
    # The client's number as written (repr round-trips), so the comparison with catalog
    # prices is exact.
    return None if value is None else Decimal(repr(value))


class Filters:
    """One request's hard filters, prepared once and applied endpoint by endpoint.

    The rules every request has (enabled, context length, max_tokens) and the client's
    preferences (only when it set any) are each written once, in `reason`.
    """

    __slots__ = (
        "data_deny",
        "ignore",
        "max_completion",
        "max_prompt",
        "max_request",
        "max_tokens",
        "most",
        "only",
        "order_only",
        "parameters",
        "picky",
        "prompt_tokens",
        "quantizations",
        "zdr",
    )

    def __init__(self, request: RouteRequest) -> None:
        prefs = request.preferences
        self.ignore = frozenset(lowered(prefs.ignore))
        self.only = _set_or_none(prefs.only, prefs.only is not None)
        self.order_only = _set_or_none(prefs.order, bool(prefs.order) and not prefs.allow_fallbacks)
        self.quantizations = _set_or_none(prefs.quantizations, bool(prefs.quantizations))
        self.data_deny = prefs.data_collection == "deny"
        self.zdr = prefs.zdr is True
        self.parameters = request.parameters if prefs.require_parameters else frozenset()
        max_price = prefs.max_price or NO_MAX_PRICE
        self.max_prompt = _decimal(max_price.prompt)
        self.max_completion = _decimal(max_price.completion)
        self.max_request = _decimal(max_price.request)
        self.prompt_tokens = request.prompt_tokens
        self.max_tokens = request.max_tokens
        self.most = request.max_tokens or 0
        # Whether any client preference filters at all; most requests set none.
        self.picky = bool(
            self.ignore
            or self.only is not None
            or self.order_only is not None
            or self.quantizations is not None
            or self.data_deny
            or self.zdr
            or self.parameters
            or prefs.max_price is not None
        )

    def reason(self, facts: EndpointFacts) -> str | None:
        """Why this endpoint may not serve the request, as `filter: detail`; None if it may."""
        if not facts.enabled:
            return f"disabled: {facts.disabled_reason}"
        if self.picky:
            why = self._preference(facts) or self._price(facts)
            if why is not None:
                return why
        if self.prompt_tokens > facts.context_length:
            return f"context_length: prompt ~{self.prompt_tokens} tokens > {facts.context_length}"
        if self.most > facts.max_completion_tokens:
            return f"max_tokens: {self.max_tokens} > the endpoint's {facts.max_completion_tokens}"
        return None

    def _preference(self, facts: EndpointFacts) -> str | None:
        provider = facts.provider
        if provider in self.ignore:
            return "ignore: provider.ignore names it"
        if self.only is not None and provider not in self.only:
            return "only: not in provider.only"
        if self.order_only is not None and provider not in self.order_only:
            return "order: not in provider.order and allow_fallbacks is false"
        ep = facts.endpoint
        if self.quantizations is not None and ep.quantization.lower() not in self.quantizations:
            return f"quantizations: {ep.quantization} is not allowed"
        if self.data_deny and ep.data_collection == "allow":
            return "data_collection: the provider may store data"
        if self.zdr and not ep.zdr:
            return "zdr: not a zero-data-retention endpoint"
        missing = self.parameters - facts.parameters if self.parameters else None
        if missing:
            return f"require_parameters: unsupported {', '.join(sorted(missing))}"
        return None

    def _price(self, facts: EndpointFacts) -> str | None:
        price = facts.endpoint.price
        if self.max_prompt is not None and price.prompt > self.max_prompt:
            return f"max_price: prompt {price.prompt} > {self.max_prompt} per 1M tokens"
        if self.max_completion is not None and price.completion > self.max_completion:
            return f"max_price: completion {price.completion} > {self.max_completion} per 1M tokens"
        if self.max_request is not None and price.request > self.max_request:
            return f"max_price: request {price.request} > {self.max_request}"
        return None


def _set_or_none(names: Iterable[str] | None, applies: bool) -> frozenset[str] | None:
    return frozenset(lowered(names)) if applies else None


def apply_filters(
    facts: Sequence[EndpointFacts], filters: Filters, rejected: dict[str, str]
) -> list[EndpointFacts]:
    """The endpoints that pass; each one that doesn't is added to `rejected` with its reason."""
    kept: list[EndpointFacts] = []
    reason = filters.reason
    for f in facts:
        why = reason(f)
        if why is None:
            kept.append(f)
        else:
            rejected[f.id] = why
    return kept
