"""Benchmark: the demand forecast's measured error on generated stores, and its speed at chain scale.

    python bench/forecast.py [--stores 5] [--items 300] [--days 182] [--lines 100000] [--seed 7]
                             [--speed-series 50000] [--speed-days 365] [--repeat 3] [--out bench/out]
                             [--peer-repeat 5] [--peer-speed-series 10000] [--no-peers]
                             [--northwind ../shared/datasets/northwind]
                             [--northwind-weeks 8]

The issue: "a forecast of daily demand for the next 14 days that respects weekday seasonality ..., with a
measured error on a held-out final week of generated history (MAPE or WAPE, against a naive last-week
baseline — report both)".

1. **Error.** ``--stores`` stores are generated with ``shared.local.generator.generate_stores`` (clean:
   ``dirty_rate=0``, so the daily units are exactly what was sold) and cached in ``--out/forecast/``, keyed by
   the parameters and a hash of the generator's source. Each store's sales become a [skus × days] matrix of
   daily units (``GROUP BY sku, date(sold_at)``; every sku of ``items``, zeros for days without sales). The
   final week is held out: the model is fitted on the days before it (``evaluate_holdout``), and compared
   with the seasonal-naive baseline (same weekday, last week) on the same cells. Per store, then all stores
   in one call (the weekday profile pooled over the chain), then by volume band. Interval: the share of
   held-out sku-days inside the forecast's [lower, upper], and above ``upper``.
2. **Grid.** How the defaults were chosen: WAPE for alpha × shrink on three *validation* weeks (the weeks
   before the held-out one, each forecast from the history before it), all stores pooled. The held-out
   week plays no part in it.
3. **Cover and reorder.** From a forecast over the whole history: days of cover and suggested orders
   (vendor lead time + 3 safety days, whole cases) for the first store, summarised.
4. **Speed.** ``--speed-series`` series × ``--speed-days`` days of synthetic Poisson demand with a weekday
   profile, built directly in numpy (stores of 1,000 skus with Zipf-like levels): wall time of
   ``forecast_demand``, ``one_step_check`` and ``evaluate_holdout`` (median of ``--repeat``).
5. **Peers** (issue 19, part 3; ``bench/forecast_peers.py``). statsforecast's AutoETS, CrostonOptimized, ADIDA,
   IMAPA and TSB on the cells of section 1's band table: WAPE, bias and interval coverage by volume band,
   and fit + predict time per 10,000 series (on ``--peer-speed-series`` synthetic series of section 4's kind,
   ``n_jobs=1`` and ``-1``, numba's first-call compile apart, median of ``--peer-repeat`` interleaved rounds;
   AutoETS, minutes a run, in the first round only). statsforecast is bench-only (``requirements-bench.txt``):
   without it, or with ``--no-peers``, sections 5 and 6 say so and score ours against naive only.
6. **Northwind.** The real orders in ``--northwind`` (read in place, never copied; skipped with a message when
   absent), weekly per product; each of the last ``--northwind-weeks`` weeks forecast from the weeks before
   it, the same metrics.

A Markdown report goes to stdout, progress to stderr; exit status 0 unless something crashed. Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import harness  # bench/harness.py, beside this file
import numpy as np
from harness import ROOT, say

sys.path.insert(0, str(ROOT))

import forecast_peers  # bench/forecast_peers.py, beside this file (statsforecast optional)

from shared.core.forecast import (
    DEFAULT_CONFIG,
    ForecastConfig,
    cover_and_reorder,
    evaluate_holdout,
    forecast_demand,
    one_step_check,
    seasonal_naive,
    wape,
)
from shared.local import generator

ALPHAS = (0.02, 0.05, 0.1, 0.2, 0.3)
SHRINKS = (0.0, 5.0, 20.0, 50.0, 200.0, 1000.0)
VALIDATION_WEEKS = 3
SPEED_WEEKDAY = np.array([0.95, 1.0, 1.0, 1.05, 1.2, 1.4, 0.7])
# Volume bands: mean units per day over the fitted history (sections 1, 5 and 6).
BANDS = (("intermittent: < 0.5 / day", 0.0, 0.5), ("slow: 0.5 - 2 / day", 0.5, 2.0),
         ("medium: 2 - 10 / day", 2.0, 10.0), ("fast: ≥ 10 / day", 10.0, np.inf))


# --- data ----------------------------------------------------------------------------------------------------

def generated_stores(args: argparse.Namespace) -> list[Path]:
    """The stores' SQLite files, generated once per parameters and generator version."""
    sources = sorted(Path(generator.__file__).parent.glob("generator*.py"))  # generator.py and its generator_*.py
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    folder = args.out / "forecast" / (f"s{args.stores}-i{args.items}-d{args.days}-n{args.lines}-seed{args.seed}"
                                      f"-{digest}")
    paths = [folder / f"S{n:03d}.sqlite" for n in range(1, args.stores + 1)]
    if all(p.exists() for p in paths) and (folder / "done").exists():
        say(f"using cached stores in {folder}")
        return paths
    say(f"generating {args.stores} stores × {args.lines:,} lines in {folder}")
    with harness.stopwatch() as t:
        generator.generate_stores(folder, args.stores, seed=args.seed, n_items=args.items, days=args.days,
                                  sales_lines=args.lines, dirty_rate=0.0)
    (folder / "done").write_text("ok\n")
    say(f"generated in {t.wall_s:.1f} s")
    return paths


def daily_units(path: Path, days: int, end: date = generator.DEFAULT_END) -> tuple[list[str], np.ndarray, date]:
    """(skus, [n_skus, days] units sold per day, first day) from a store's sales table."""
    start = end - timedelta(days=days - 1)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        skus = [r[0] for r in con.execute("SELECT sku FROM items ORDER BY sku")]
        rows = con.execute("SELECT sku, julianday(date(sold_at)) - julianday(?), SUM(qty) FROM sales "
                           "GROUP BY sku, date(sold_at)", (start.isoformat(),)).fetchall()
    finally:
        con.close()
    index = {s: i for i, s in enumerate(skus)}
    units = np.zeros((len(skus), days))
    for sku, day, qty in rows:
        units[index[sku], int(day)] += qty
    return skus, units, start


def store_stock(path: Path, skus: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(on_hand, lead_time_days, reorder_qty) aligned with ``skus``."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        on_hand = dict(con.execute("SELECT sku, on_hand FROM stock").fetchall())
        rows = con.execute("SELECT i.sku, COALESCE(v.lead_time_days, 7), COALESCE(i.reorder_qty, 0) FROM items i "
                           "LEFT JOIN vendors v ON v.vendor_id = i.vendor_id").fetchall()
    finally:
        con.close()
    lead = {s: (lt, rq) for s, lt, rq in rows}
    return (np.array([on_hand.get(s, 0) for s in skus], dtype=float),
            np.array([lead[s][0] for s in skus], dtype=float), np.array([lead[s][1] for s in skus], dtype=float))


def synthetic(n_series: int, n_days: int, seed: int) -> np.ndarray:
    """Poisson daily units with the generator's weekday profile: stores of 1,000 skus, each with Zipf-like
    levels (30 · rank^-0.9 a day, ×lognormal noise, at least 0.02) — a chain's store × sku matrix."""
    rng = np.random.default_rng(seed)
    rank = np.concatenate([rng.permutation(1000) for _ in range(-(-n_series // 1000))])[:n_series] + 1.0
    levels = np.maximum(30.0 * rank**-0.9 * rng.lognormal(0.0, 0.3, n_series), 0.02)
    profile = SPEED_WEEKDAY / SPEED_WEEKDAY.mean()
    lam = levels[:, None] * profile[np.arange(n_days) % 7][None, :]
    return rng.poisson(lam).astype(np.float64)


# --- report --------------------------------------------------------------------------------------------------

def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def coverage(history: np.ndarray, first_day: date, holdout: int, config: ForecastConfig) -> tuple[float, float]:
    """(share of held-out cells inside [lower, upper], share above upper)."""
    fc = forecast_demand(history[:, :-holdout], first_day, replace(config, horizon=holdout))
    actual = history[:, -holdout:]
    inside = (actual >= fc.lower) & (actual <= fc.upper)
    return float(inside.mean()), float((actual > fc.upper).mean())


def error_section(stores: list[tuple[str, np.ndarray, date]], repeat: int) -> list[str]:
    out = ["## 1. Error on the held-out final week", "",
           "Fitted on all days but the last 7, forecasting those 7; the baseline repeats the last observed week.",
           "WAPE = Σ|actual − forecast| / Σ actual over every sku-day; MAPE = mean |actual − forecast| / actual over "
           "the sku-days with actual > 0 only. In interval / above it: held-out sku-days inside the 95 % interval / "
           "above its upper bound (what UnusualSales would see; counts are discrete, so coverage runs over 95 %). "
           "Fit time = `forecast_demand` for all the row's series.", "",
           "| store | series | days | units held out | WAPE model | WAPE naive | model ÷ naive | MAPE model "
           "| MAPE naive | in interval | above it | fit time |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = list(stores)
    first_days = {d for _, _, d in stores}
    if len(first_days) == 1 and len(stores) > 1:
        rows.append((f"all {len(stores)} stores, one call", np.vstack([h for _, h, _ in stores]), stores[0][2]))
    results = {}
    for name, hist, first in rows:
        r = evaluate_holdout(hist, first)
        t, _ = harness.timed(lambda hist=hist, first=first: forecast_demand(hist[:, :-7], first), repeat)
        cov, above = coverage(hist, first, 7, DEFAULT_CONFIG)
        results[name] = r
        out.append(f"| {name} | {r['series']:,} | {hist.shape[1]} | {r['units']:,.0f} | {pct(r['wape'])} | "
                   f"{pct(r['wape_naive'])} | {r['wape'] / r['wape_naive']:.2f} | {pct(r['mape'])} | "
                   f"{pct(r['mape_naive'])} | {pct(cov)} | {pct(above)} | {1000 * t.wall_s:.1f} ms |")

    # By volume band (all stores): where the gain comes from.
    hist = np.vstack([h for _, h, _ in stores])
    first = stores[0][2]
    fit, actual = hist[:, :-7], hist[:, -7:]
    fc = forecast_demand(fit, first, ForecastConfig(horizon=7))
    model = fc.mean
    d = np.percentile(fc.dispersion, [10, 50, 90])
    out += ["", f"Dispersion d (variance ÷ mean of a sku-day) after shrinkage: median {d[1]:.2f} (10-90 %: "
            f"{d[0]:.2f}-{d[2]:.2f}); a Poisson count has 1."]
    naive = seasonal_naive(fit, 7)
    per_day = fit.mean(axis=1)
    out += ["", "By volume (all stores; mean units per day over the fitted history):", "",
            "| band | series | units held out | WAPE model | WAPE naive | model ÷ naive |",
            "|---|---:|---:|---:|---:|---:|"]
    for label, lo, hi in BANDS:
        m = (per_day >= lo) & (per_day < hi)
        if not m.any() or actual[m].sum() == 0:
            continue
        wm, wn = wape(actual[m], model[m]), wape(actual[m], naive[m])
        out.append(f"| {label} | {int(m.sum()):,} | {actual[m].sum():,.0f} | {pct(wm)} | {pct(wn)} | {wm / wn:.2f} |")
    return out


def grid_section(stores: list[tuple[str, np.ndarray, date]]) -> list[str]:
    hist = np.vstack([h for _, h, _ in stores])
    first = stores[0][2]
    fits = [hist[:, : -7 * (k + 1)] for k in range(1, VALIDATION_WEEKS + 1)]
    actuals = [hist[:, -7 * (k + 1): -7 * k] for k in range(1, VALIDATION_WEEKS + 1)]
    naive = wape(np.hstack(actuals), np.hstack([seasonal_naive(f, 7) for f in fits]))
    table = {}
    for a in ALPHAS:
        for s in SHRINKS:
            cfg = ForecastConfig(horizon=7, alpha=a, shrink=s)
            preds = [forecast_demand(f, first, cfg).mean for f in fits]
            table[a, s] = wape(np.hstack(actuals), np.hstack(preds))
    best = min(table, key=table.get)
    default = table.get((DEFAULT_CONFIG.alpha, DEFAULT_CONFIG.shrink), float("nan"))
    out = ["## 2. Parameter grid (validation weeks only)", "",
           f"WAPE of the model over the {VALIDATION_WEEKS} weeks before the held-out week (each forecast from the "
           f"days before it), all {len(stores)} stores × {hist.shape[0] // len(stores)} skus in one call; the "
           f"seasonal-naive baseline scores {pct(naive)} on the same weeks. Best: alpha {best[0]}, shrink "
           f"{best[1]:g} ({pct(table[best])}); default: alpha {DEFAULT_CONFIG.alpha}, shrink "
           f"{DEFAULT_CONFIG.shrink:g} ({pct(default)}).",
           "", "| alpha \\ shrink (units) | " + " | ".join(f"{s:g}" for s in SHRINKS) + " |",
           "|---|" + "---:|" * len(SHRINKS)]
    for a in ALPHAS:
        out.append(f"| {a} | " + " | ".join(pct(table[a, s]) for s in SHRINKS) + " |")
    return out


def reorder_section(path: Path, skus: list[str], hist: np.ndarray, first: date) -> list[str]:
    fc = forecast_demand(hist, first)
    on_hand, lead, case = store_stock(path, skus)
    mean_daily = fc.mean.mean(axis=1)
    cover, order = cover_and_reorder(on_hand, mean_daily, lead, case)
    finite = cover[np.isfinite(cover)]
    to_order = order > 0
    out = ["## 3. Days of cover and suggested orders (first store, forecast from the whole history)", "",
           f"{len(skus)} skus; forecast from {fc.first_day} for {fc.mean.shape[1]} days; order = demand over "
           "(vendor lead time + 3 safety days) − on hand, in whole cases of `reorder_qty`.", "",
           "| measure | value |", "|---|---:|",
           f"| median days of cover (skus with demand) | {np.median(finite):.1f} |",
           f"| skus with < lead time of cover | {int((cover < lead).sum())} |",
           f"| skus with a suggested order | {int(to_order.sum())} |",
           f"| units suggested | {int(order.sum()):,} |", "",
           "The five shortest covers:", "",
           "| sku | on hand | forecast / day | lead time | cover (days) | case | suggested order |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for i in np.argsort(cover, kind="stable")[:5]:
        out.append(f"| {skus[i]} | {on_hand[i]:.0f} | {mean_daily[i]:.2f} | {lead[i]:.0f} | {cover[i]:.1f} | "
                   f"{case[i]:.0f} | {order[i]} |")
    return out


def speed_section(n_series: int, n_days: int, repeat: int, seed: int) -> list[str]:
    say(f"building {n_series:,} × {n_days} synthetic series")
    hist = synthetic(n_series, n_days, seed)
    first = date(2025, 11, 27)
    rows = [("`forecast_demand` (14 days)", lambda: forecast_demand(hist, first)),
            ("`one_step_check` (last day)", lambda: one_step_check(hist, first)),
            ("`evaluate_holdout` (fit + 7 days + baseline + scores)", lambda: evaluate_holdout(hist, first))]
    out = ["## 4. Speed at chain scale", "",
           f"{n_series:,} series × {n_days} days of Poisson units with a weekday profile (mean "
           f"{hist.mean():.2f} units a day, {pct(float((hist == 0).mean()))} of sku-days zero), float64 in memory "
           f"({hist.nbytes / 2**20:.0f} MiB); median of {repeat} runs, one process, numpy {np.__version__}.", "",
           "| call | wall time | CPU time | per series |", "|---|---:|---:|---:|"]
    r = None
    for label, fn in rows:
        t, res = harness.timed(fn, repeat)
        if label.startswith("`evaluate"):
            r = res
        out.append(f"| {label} | {t.wall_s:.3f} s | {t.cpu_s:.3f} s | {1e6 * t.wall_s / n_series:.1f} µs |")
    if r:
        out += ["", f"(On this synthetic data: WAPE model {pct(r['wape'])}, naive {pct(r['wape_naive'])}; MAPE model "
                f"{pct(r['mape'])}, naive {pct(r['mape_naive'])}.)"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stores", type=int, default=5)
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--days", type=int, default=182)
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--speed-series", type=int, default=50_000)
    ap.add_argument("--speed-days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--peer-repeat", type=int, default=5, help="interleaved rounds of the peers' speed runs")
    ap.add_argument("--peer-speed-series", type=int, default=10_000, help="synthetic series for the peers' "
                    "speed (0: none)")
    ap.add_argument("--no-peers", action="store_true", help="skip statsforecast even if it is installed")
    ap.add_argument("--northwind", type=Path, default=ROOT.parent / "shared" / "datasets" / "northwind")
    ap.add_argument("--northwind-weeks", type=int, default=8, help="held-out weeks (rolling origin)")
    args = ap.parse_args(argv)
    if args.no_peers:
        forecast_peers.PEERS_MISSING = "Peer comparison skipped (--no-peers): ours vs seasonal naive only."
    elif forecast_peers.PEERS_MISSING:
        say(forecast_peers.PEERS_MISSING)

    paths = generated_stores(args)
    stores, skus0 = [], None
    for p in paths:
        skus, hist, first = daily_units(p, args.days)
        skus0 = skus0 or skus
        stores.append((p.stem, hist, first))
    say("scoring the held-out week")
    report = [f"# Demand forecast: {args.stores} generated stores × {args.items} skus × {args.days} days "
              f"(~{args.lines:,} sale lines each, seed {args.seed})", "",
              harness.provenance(harness.command(__file__, argv)), "",
              f"Model: exponential smoothing of the level (alpha {DEFAULT_CONFIG.alpha}, each day weighed by its "
              f"weekday factor), weekday factors "
              f"from the last {DEFAULT_CONFIG.season_weeks} weeks shrunk toward the pooled profile "
              f"({DEFAULT_CONFIG.shrink:g} units of prior), quasi-Poisson interval z = {DEFAULT_CONFIG.z}.", ""]
    report += error_section(stores, args.repeat)
    say("grid over alpha × shrink on validation weeks")
    report += ["", *grid_section(stores)]
    report += ["", *reorder_section(paths[0], skus0, stores[0][1], stores[0][2])]
    report += ["", *speed_section(args.speed_series, args.speed_days, args.repeat, args.seed)]
    say("peers on the generated stores")
    speed = synthetic(args.peer_speed_series, args.days - 7, args.seed) if args.peer_speed_series else None
    report += ["", *forecast_peers.generated_section(np.vstack([h for _, h, _ in stores]), stores[0][2], BANDS,
                                                     args.repeat, args.peer_repeat, speed)]
    say("Northwind")
    report += ["", *forecast_peers.northwind_section(args.northwind, BANDS, args.northwind_weeks, args.repeat)]
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
