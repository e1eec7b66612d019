"""A key's monthly statement: a line per day, model, provider and price version with the unit
prices billed, totals, and what prompt caching saved; as JSON, CSV or printable HTML.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.ledger.daily_rollup import DailySums
from gateway.reports.periods import Period
from gateway.reports.query import ReportQuery, key_names, run_report, total_of, unit_prices_of
from gateway.reports.views import MEASURES, json_record, measures, money, to_csv

STATEMENT_GROUPS = ("day", "model", "provider", "price_version")
UNIT_PRICES = ("prompt", "completion", "cache_read", "cache_write", "request")
PRICE_COLUMNS = tuple(f"price_{name}" for name in UNIT_PRICES)
COLUMNS = ("day", "model", "provider", "price_version", *PRICE_COLUMNS, *MEASURES)
FORMATS = ("json", "csv", "html")
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Statement:
    key_id: str
    key_name: str | None
    period: Period
    generated_at: datetime
    lines: list[dict[str, Any]]
    totals: DailySums

    @property
    def month(self) -> str:
        return self.period.start.strftime("%Y-%m")

    def saved_share(self) -> Decimal:
        """What caching saved as a share of the gross cost (0 when nothing was billed)."""
        gross = self.totals.cost + self.totals.cache_discount
        return Decimal(0) if gross == 0 else self.totals.cache_discount / gross

    def body(self) -> dict[str, Any]:
        return {
            "key": {"id": self.key_id, "name": self.key_name},
            "period": {
                "month": self.month,
                "from": self.period.start.isoformat(),
                "to": self.period.end.isoformat(),
                "timezone": "UTC",
            },
            "generated_at": self.generated_at.isoformat(),
            "lines": [_json_line(line) for line in self.lines],
            "totals": json_record(measures(self.totals)),
            "prompt_caching": {
                "cached_tokens": self.totals.cached_tokens,
                "cache_write_tokens": self.totals.cache_write_tokens,
                "saved": money(self.totals.cache_discount),
                "saved_share": money(self.saved_share().quantize(Decimal("0.0001"))),
            },
        }

    def json(self) -> str:
        return _encode(self.body()).decode()

    def csv(self) -> str:
        """The lines, then a `total` line (its day column says so)."""
        total = {c: None for c in COLUMNS} | {"day": "total"} | measures(self.totals)
        return to_csv([*self.lines, total], COLUMNS)

    def html(self) -> str:
        return render_html(self)


def _json_line(line: dict[str, Any]) -> dict[str, Any]:
    return {
        name: money(value) if isinstance(value, Decimal) else value for name, value in line.items()
    }


async def build_statement(
    engine: AsyncEngine, key_id: str, period: Period, now: datetime
) -> Statement:
    rows = await run_report(engine, ReportQuery(period, STATEMENT_GROUPS, key_id))
    prices = await unit_prices_of(engine, [row.group["price_version"] or "" for row in rows])
    names = await key_names(engine, [key_id])
    lines = []
    for row in rows:
        group = row.group
        registered = prices.get(group["price_version"] or "", {})
        lines.append(
            {
                "day": group["day"].isoformat(),
                "model": group["model"],
                "provider": group["provider"],
                "price_version": group["price_version"],
                **{f"price_{n}": registered.get(n) for n in UNIT_PRICES},
                **measures(row.sums),
            }
        )
    return Statement(key_id, names.get(key_id), period, now, lines, total_of(rows))


_STYLE = """
  body { font: 10pt/1.35 system-ui, sans-serif; color: #111; margin: 2em; }
  h1 { font-size: 16pt; margin: 0 0 .2em; }
  .meta { color: #444; margin-bottom: 1em; }
  table { border-collapse: collapse; width: 100%; }
  th, td { border-bottom: 1px solid #ccc; padding: .25em .4em; text-align: left;
           white-space: nowrap; }
  td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
  thead th, thead th.n { border-bottom: 2px solid #111; white-space: normal;
                         vertical-align: bottom; }
  tfoot td { border-top: 2px solid #111; font-weight: bold; }
  .summary { margin: 1em 0; width: auto; }
  .summary td { border: none; padding: .1em 1em .1em 0; }
  @page { size: A4 landscape; margin: 12mm; }
  @media print { body { margin: 0; font-size: 9pt; } thead { display: table-header-group; }
                 tr { break-inside: avoid; } }
"""
_HTML_COLUMNS = (
    ("day", "Day", False),
    ("model", "Model", False),
    ("provider", "Provider", False),
    ("price_version", "Price version", False),
    ("requests", "Requests", True),
    ("prompt_tokens", "Prompt tokens", True),
    ("cached_tokens", "Cached", True),
    ("completion_tokens", "Completion tokens", True),
    ("reasoning_tokens", "Reasoning", True),
    ("gross_cost", "Before caching (USD)", True),
    ("cache_discount", "Caching saved (USD)", True),
    ("cost", "Cost (USD)", True),
)


def _cell(value: Any, numeric: bool) -> str:
    text = "" if value is None else money(value) if isinstance(value, Decimal) else str(value)
    return f'<td class="n">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>"


def _prices(line: dict[str, Any]) -> str:
    if line.get("price_prompt") is None:
        return ""
    tokens = ", ".join(
        f"{n.replace('_', ' ')} {money(line[f'price_{n}'])}" for n in UNIT_PRICES[:4]
    )
    return f"USD per 1M tokens: {tokens}; USD per request: {money(line['price_request'])}"


def render_html(statement: Statement) -> str:
    """A self-contained page that prints on A4 (header row repeated on every page)."""
    head = "".join(
        f'<th class="n">{label}</th>' if numeric else f"<th>{label}</th>"
        for _, label, numeric in _HTML_COLUMNS
    )
    body = []
    for line in statement.lines:
        cells = "".join(_cell(line[name], numeric) for name, _, numeric in _HTML_COLUMNS)
        title = html.escape(_prices(line), quote=True)
        body.append(f'<tr title="{title}">{cells}</tr>')
    totals = measures(statement.totals)
    foot = "".join(
        _cell(totals[name], True) if name in totals else "<td></td>" for name, _, _ in _HTML_COLUMNS
    ).replace("<td></td>", "<td>Total</td>", 1)
    name = statement.key_name or statement.key_id
    start, end = statement.period.start.isoformat(), statement.period.end.isoformat()
    share = (statement.saved_share() * 100).quantize(Decimal("0.01"))
    prices = sorted(
        {
            (line["provider"] or "", line["price_version"] or "", _prices(line))
            for line in statement.lines
            if line["price_version"]
        }
    )
    price_rows = "".join(
        f"<tr><td>{html.escape(p)}</td><td>{html.escape(v)}</td><td>{html.escape(t)}</td></tr>"
        for p, v, t in prices
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Statement {html.escape(statement.month)} - {html.escape(name)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>Usage statement {html.escape(statement.month)}</h1>
<div class="meta">Key <strong>{html.escape(name)}</strong>
({html.escape(statement.key_id)}) &middot; period {start} 00:00 to {end} 00:00 UTC
(end exclusive) &middot; generated {html.escape(statement.generated_at.isoformat())}</div>
<table class="summary">
<tr><td>Requests</td><td class="n">{statement.totals.requests}</td></tr>
<tr><td>Cost before prompt caching</td><td class="n">USD {money(totals["gross_cost"])}</td></tr>
<tr><td>Prompt caching saved</td><td class="n">USD {money(totals["cache_discount"])}
 ({share}% of the cost before caching; {statement.totals.cached_tokens} cached tokens)</td></tr>
<tr><td><strong>Total due</strong></td>
<td class="n"><strong>USD {money(totals["cost"])}</strong></td></tr>
</table>
<table><thead><tr>{head}</tr></thead>
<tbody>{"".join(body)}</tbody>
<tfoot><tr>{foot}</tr></tfoot></table>
<h2 style="font-size:12pt;margin-top:1.5em">Prices billed</h2>
<table><thead><tr><th>Provider</th><th>Price version</th><th>Unit prices</th></tr></thead>
<tbody>{price_rows}</tbody></table>
</body></html>
"""
