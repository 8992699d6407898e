"""Acceptance: the article's examples 1-4, run verbatim, print the article's tables."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import kernel_engine
from kernel_engine.demo import EXAMPLES, run_examples

ARTICLE = Path(__file__).resolve().parents[2] / "shared" / "article" / "consistency-guarantees.txt"

# The output tables exactly as printed in the article, in the order the queries run.
EXPECTED = [
    """
 user_id | purchase_count | refund_count | net_spend
---------+----------------+--------------+-----------
      42 |              1 |            1 |    120.00
      43 |              2 |            0 |    229.49
      44 |              1 |            0 |     89.00
""",
    """
 user_id | purchase_count | refund_count | net_spend
---------+----------------+--------------+-----------
      42 |              2 |            1 |    420.00
      43 |              2 |            0 |    229.49
      44 |              2 |            0 |    144.00
""",
    """
  category   | order_count | total_revenue
-------------+-------------+---------------
 Electronics |           3 |       1398.98
 Clothing    |           1 |         99.98
 Books       |           1 |         44.97
""",
    """
    window_start     |     window_end      | event_type | event_count | total_amount
---------------------+---------------------+------------+-------------+--------------
 2026-04-01 09:00:00 | 2026-04-01 09:01:00 | purchase   |           4 |       468.48
 2026-04-01 09:00:00 | 2026-04-01 09:01:00 | refund     |           1 |       -29.99
 2026-04-01 09:01:00 | 2026-04-01 09:02:00 | purchase   |           2 |       355.00
""",
]


def _parse_table(text: str) -> tuple[list[str], list[list[str]]]:
    lines = [ln for ln in text.strip("\n").splitlines() if ln.strip()]
    header = [h.strip() for h in lines[0].split("|")]
    rows = [[c.strip() for c in ln.split("|")] for ln in lines[2:]]
    return header, rows


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def test_examples_match_the_article_tables() -> None:
    db = kernel_engine.connect()
    try:
        results = run_examples(db, out=open("/dev/null", "w"))  # noqa: SIM115
        assert len(results) == len(EXPECTED)
        for (_, result), expected in zip(results, EXPECTED, strict=True):
            header, rows = _parse_table(expected)
            assert [d[0] for d in result.description or []] == header
            got = [[_cell(v) for v in row] for row in result.fetchall()]
            assert got == rows
        assert db.progress.errors == []
    finally:
        db.close()


NO_ARTICLE = not ARTICLE.exists() and not os.environ.get("CI")


@pytest.mark.skipif(NO_ARTICLE, reason="article not beside the checkout")
def test_examples_are_the_article_sql_verbatim() -> None:
    article = re.sub(r"\s+", " ", ARTICLE.read_text())
    for _, sql in EXAMPLES:
        for block in sql.strip().split("\n\n"):
            assert re.sub(r"\s+", " ", block.strip()) in article


@pytest.mark.skipif(NO_ARTICLE, reason="article not beside the checkout")
def test_expected_tables_are_the_article_tables() -> None:
    article = ARTICLE.read_text()
    for table in EXPECTED:
        assert table.strip("\n") in article
