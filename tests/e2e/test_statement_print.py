"""The HTML statement printed by a real browser (Debian's chromium, headless): A4 landscape,
a month of lines across pages, and the figures (escaped text included) in the printed page."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.ledger.daily_rollup import DailySums
from gateway.reports.periods import month_of
from gateway.reports.statement import Statement
from gateway.reports.views import measures

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
A4_LANDSCAPE = "[0 0 841.91998 594.95996]"


def month_statement(lines_per_day: int) -> Statement:
    period = month_of(date(2026, 10, 1))
    lines, total = [], DailySums()
    for n in range(31 * lines_per_day):
        sums = DailySums(
            requests=n + 1,
            prompt_tokens=1000 * n,
            completion_tokens=90 * n,
            cached_tokens=256 * (n % 3),
            reasoning_tokens=n,
            cost=Decimal(n + 1).scaleb(-9) * 7,
            cache_discount=Decimal(n % 3).scaleb(-10),
        )
        total.add(sums)
        lines.append(
            {
                "day": (period.start + timedelta(days=n // lines_per_day)).isoformat(),
                "model": "openai/gpt-oss-20b",
                "provider": ("groq", "local", "deepinfra")[n % 3],
                "price_version": f"{n % 3:012x}",
                "price_prompt": Decimal("0.075"),
                "price_completion": Decimal("0.3"),
                "price_cache_read": Decimal("0.0375"),
                "price_cache_write": Decimal("0.075"),
                "price_request": Decimal(0),
                **measures(sums),
            }
        )
    return Statement(
        "key-0123", "Acme <Corp> & Co", period, datetime(2026, 11, 1, tzinfo=UTC), lines, total
    )


@pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (scripts/test.sh installs it)"
)
def test_a_month_statement_prints_on_a4_landscape_pages(tmp_path: Path) -> None:
    statement = month_statement(lines_per_day=3)
    page = tmp_path / "statement.html"
    page.write_text(statement.html(), encoding="utf-8")
    pdf = tmp_path / "statement.pdf"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    printed = pdf.read_bytes()
    boxes = re.findall(rb"/MediaBox\s*(\[[^\]]*\])", printed)
    pages = len(re.findall(rb"/Type\s*/Page\b", printed))
    assert pages >= 2  # 93 lines don't fit one page; the table continues on the next
    assert boxes and {b.decode() for b in boxes} == {A4_LANDSCAPE}
    html = statement.html()
    assert "Acme &lt;Corp&gt; &amp; Co" in html and "<Corp>" not in html
    total_cost = measures(statement.totals)["cost"]
    assert f"USD {total_cost.normalize():f}" in html
