"""The billing report: parse what is asked, sum the rollup, name the keys; shared by the HTTP
API and `gateway report billing`. Lines and totals come from the same rows, so they add up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.ledger.daily_rollup import DailySums
from gateway.reports.periods import Period
from gateway.reports.query import (
    ALL_KEYS,
    GROUPS,
    ReportQuery,
    key_names,
    run_report,
    total_of,
    with_price_versions,
)
from gateway.reports.views import MEASURES, billing_body, group_columns, record, to_csv

DEFAULT_GROUP_BY = ("model", "provider")
FORMATS = ("json", "csv")


class GroupByError(ValueError):
    """A `group_by` that names something a report can't group by."""


def parse_group_by(text: str | None) -> tuple[str, ...]:
    if text is None or not text.strip():
        return DEFAULT_GROUP_BY
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        raise GroupByError(
            f"`group_by` can't group by {', '.join(map(repr, unknown))}; "
            f"use a comma list of {', '.join(GROUPS)}"
        )
    if "day" in names and "month" in names:
        raise GroupByError("`group_by` takes day or month, not both")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class BillingReport:
    period: Period
    groups: tuple[str, ...]
    columns: list[str]
    lines: list[dict[str, Any]]
    totals: DailySums

    def body(self) -> dict[str, Any]:
        return billing_body(
            self.lines,
            self.totals,
            {
                "from": self.period.start.isoformat(),
                "to": self.period.end.isoformat(),
                "group_by": list(self.groups),
            },
        )

    def csv(self) -> str:
        return to_csv(self.lines, self.columns)


async def billing_report(
    engine: AsyncEngine,
    period: Period,
    group_by: tuple[str, ...],
    api_key_id: str | None = ALL_KEYS,
) -> BillingReport:
    groups = with_price_versions(group_by)
    rows = await run_report(engine, ReportQuery(period, groups, api_key_id))
    names = await key_names(engine, [row.group["key"] for row in rows]) if "key" in groups else {}
    lines = [record(row, groups, names) for row in rows]
    columns = [*group_columns(groups), *MEASURES]
    return BillingReport(period, groups, columns, lines, total_of(rows))
