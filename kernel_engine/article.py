"""The SQL of "Consistency Guarantees in Streaming Systems", examples 1-4, verbatim.

Used by `make demo`, the acceptance test and the crash lab's default workload.
"""

from __future__ import annotations

from kernel_engine.sql.split import split_statements

__all__ = ["EXAMPLES", "statements"]

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


def statements(example: int) -> list[str]:
    """The statements of example `example` (1-based), in order."""
    return [piece.text for piece in split_statements(EXAMPLES[example - 1][1])]
