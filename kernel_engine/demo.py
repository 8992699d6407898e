"""`make demo`: the article's examples 1-4, run verbatim through the engine.

Prints every statement and, for queries, its result table. The SQL below is
copied exactly as printed in "Consistency Guarantees in Streaming Systems".
"""

from __future__ import annotations

import sys

import kernel_engine
from kernel_engine.result import Result
from kernel_engine.sql.split import split_statements

__all__ = ["EXAMPLES", "format_table", "main", "run_examples"]

EXAMPLES: list[tuple[str, str]] = [
    ("Example 1: Setting Up an Event Stream", """
CREATE TABLE cons_events (
    event_id    BIGINT,
    user_id     INT,
    event_type  VARCHAR,
    amount      DOUBLE PRECISION,
    event_ts    TIMESTAMP
);

INSERT INTO cons_events VALUES
    (1001, 42, 'purchase', 149.99, '2026-04-01 09:00:01'),
    (1002, 43, 'purchase', 29.50,  '2026-04-01 09:00:02'),
    (1003, 42, 'refund',   -29.99, '2026-04-01 09:00:03'),
    (1004, 44, 'purchase', 89.00,  '2026-04-01 09:00:04'),
    (1005, 43, 'purchase', 199.99, '2026-04-01 09:00:05');
"""),
    ("Example 2: Exactly-Once Aggregation via Materialized View", """
CREATE MATERIALIZED VIEW cons_user_spend AS
SELECT
    user_id,
    COUNT(*) FILTER (WHERE amount > 0) AS purchase_count,
    COUNT(*) FILTER (WHERE amount < 0) AS refund_count,
    SUM(amount)                         AS net_spend
FROM cons_events
GROUP BY user_id;

SELECT * FROM cons_user_spend ORDER BY user_id;

INSERT INTO cons_events VALUES
    (1006, 44, 'purchase', 55.00,  '2026-04-01 09:01:00'),
    (1007, 42, 'purchase', 300.00, '2026-04-01 09:01:01');

FLUSH;

SELECT * FROM cons_user_spend ORDER BY user_id;
"""),
    ("Example 3: Category Revenue with Order Data", """
CREATE TABLE cons_orders (
    order_id     BIGINT,
    user_id      INT,
    product_id   VARCHAR,
    category     VARCHAR,
    price        DOUBLE PRECISION,
    quantity     INT,
    order_ts     TIMESTAMP
);

INSERT INTO cons_orders VALUES
    (5001, 10, 'PROD-A', 'Electronics', 299.99, 1, '2026-04-01 10:00:00'),
    (5002, 10, 'PROD-B', 'Clothing',    49.99,  2, '2026-04-01 10:01:00'),
    (5003, 11, 'PROD-A', 'Electronics', 299.99, 1, '2026-04-01 10:02:00'),
    (5004, 12, 'PROD-C', 'Books',       14.99,  3, '2026-04-01 10:03:00'),
    (5005, 11, 'PROD-D', 'Electronics', 799.00, 1, '2026-04-01 10:04:00');

CREATE MATERIALIZED VIEW cons_category_revenue AS
SELECT
    category,
    COUNT(*)              AS order_count,
    SUM(price * quantity) AS total_revenue
FROM cons_orders
GROUP BY category;

FLUSH;

SELECT * FROM cons_category_revenue ORDER BY total_revenue DESC;
"""),
    ("Example 4: Windowed Event Counts", """
CREATE MATERIALIZED VIEW cons_event_window_counts AS
SELECT
    window_start,
    window_end,
    event_type,
    COUNT(*)    AS event_count,
    SUM(amount) AS total_amount
FROM TUMBLE(cons_events, event_ts, INTERVAL '1' MINUTE)
GROUP BY window_start, window_end, event_type;

FLUSH;

SELECT * FROM cons_event_window_counts ORDER BY window_start, event_type;
"""),
]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value)


def format_table(result: Result) -> str:
    """A result in psql's aligned format (DOUBLE values with two decimals)."""
    table = result.arrow()
    names = table.column_names
    rows = [[_cell(v) for v in row] for row in result.fetchall()]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    numeric = [all(_is_number(r[i]) for r in rows) and rows != [] for i in range(len(names))]
    header = " | ".join(n.center(w) for n, w in zip(names, widths, strict=True))
    rule = "-+-".join("-" * w for w in widths)
    body = [" | ".join(v.rjust(w) if num else v.ljust(w)
                       for v, w, num in zip(r, widths, numeric, strict=True)) for r in rows]
    return "\n".join([" " + header, "-" + rule + "-", *(" " + b for b in body)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def run_examples(db: kernel_engine.Connection,
                 out: object = sys.stdout) -> list[tuple[str, Result]]:
    """Run every statement of examples 1-4; return (statement, result) of each query."""
    results: list[tuple[str, Result]] = []
    for title, sql in EXAMPLES:
        print(f"== {title}\n", file=out)  # type: ignore[call-overload]
        for piece in split_statements(sql):
            print(piece.text + ";", file=out)  # type: ignore[call-overload]
            result = db.execute(piece.text)
            if result.description is not None:
                print("\nOutput:\n\n" + format_table(result), file=out)  # type: ignore[call-overload]
                results.append((piece.text, db.execute(piece.text)))
            print(file=out)  # type: ignore[call-overload]
    return results


def main() -> None:
    """Entry point of `make demo`."""
    with kernel_engine.connect() as db:
        run_examples(db)


if __name__ == "__main__":
    main()
