"""Small hand-made dumps for tests: a valid minimal store, and ways to make it hostile."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

MINIMAL = """
CREATE TABLE vendors(vendor_id TEXT, name TEXT, email TEXT, lead_time_days INTEGER);
INSERT INTO vendors VALUES ('V1', 'Acme', 'orders@acme.example', 3);
CREATE TABLE items(sku, name, category, vendor_id, unit_cost, unit_price, reorder_point, reorder_qty, active);
INSERT INTO items VALUES ('A-1', 'Milk', 'Dairy', 'V1', 0.5, 1.0, 5, 10, 1),
                         ('A-2', 'Bread', 'Bakery', 'V1', 1.0, 2.0, 3, 6, 1);
CREATE TABLE stock(sku, on_hand, counted_at);
INSERT INTO stock VALUES ('A-1', 10, '2026-11-26 23:00:00'), ('A-2', 4, '2026-11-26 22:00:00');
CREATE TABLE sales(sale_id, line_no, sku, qty, unit_price, sold_at);
INSERT INTO sales VALUES ('1', 1, 'A-1', 2, 1.0, '2026-11-25 10:00:00'),
                         ('1', 2, 'A-2', 1, 2.0, '2026-11-25 10:00:00'),
                         ('2', 1, 'A-1', 1, 1.0, '2026-11-26 09:30:00');
"""


def make_dump(path: Path, extra_sql: str = "", base: str = MINIMAL) -> Path:
    path = Path(path)
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.executescript(base + extra_sql)
    con.commit()
    con.close()
    return path


def next_night(src: Path, dst: Path, new_lines: int) -> Path:
    """The next night's full snapshot of a generated store: everything in ``src`` plus ``new_lines`` sales,
    recounted stock."""
    shutil.copy(src, dst)
    con = sqlite3.connect(dst)
    sku = con.execute("SELECT sku FROM items LIMIT 1").fetchall()[0][0]
    con.executemany("INSERT INTO sales VALUES (?, 1, ?, 1, 1.0, ?)",
                    [(f"NEXT-{i}", sku, "2026-11-27 12:00:00") for i in range(new_lines)])
    con.execute("UPDATE stock SET counted_at = '2026-11-27 23:00:00'")
    con.commit()
    con.close()
    return Path(dst)
