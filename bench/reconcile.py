"""Reconciliation of a city-month: imports, reconcile time, scaling, recall per attack class.

The city: 150 centers with one device each, 600 groups, about 8,500 children,
heartbeats every 300 s, a month (about 1.6-1.7 million records). How records
get in: the city is generated against the in-memory stand-in portal (records
hashed, not signed) and bulk-inserted with the columns the ingest writes
(:func:`portal.synthetic.feed.bulk_load`); in the same run a smaller signed city
goes through the real ingest (signatures, chain, receipts). The schedule,
roster and confirmations are imported by the city's import plan, each file at
its simulated time (late schedule changes after their dates). Reconciliation
always reads from the database; its rows are scored against the generator's
ground truth (:func:`score`), and the risk queue, when
:mod:`portal.reconcile.risk` provides one, by :func:`risk_scores`.

``--quick``: 10 centers, two weeks (a smoke test).
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy

from bench.common import finish, load_note, median, parse_args, table
from portal.reconcile.engine import Result
from portal.reconcile.lessons import load_zone
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.rules import AT_RISK, UNVERIFIABLE, VERIFIED
from portal.reconcile.store import run_reconciliation
from portal.settings import Settings
from portal.state import Portal, open_portal
from portal.synthetic.feed import IngestUplink, apply_plan, bulk_load
from portal.synthetic.generator import (
    FRAUD_KINDS,
    HONEST,
    City,
    CityConfig,
    LocalPortal,
    generate,
    reconcile_local,
)

T0 = 1_700_000_000_000


@contextmanager
def store(kind: str, root: Path) -> Iterator[Portal | None]:
    """A fresh migrated store: SQLite in ``root``, or a new PostgreSQL schema (None if no DSN)."""
    if kind == "sqlite":
        portal = open_portal(Settings(data_dir=root / f"sqlite-{secrets.token_hex(3)}"))
        try:
            yield portal
        finally:
            portal.close()
        return
    dsn = os.environ.get("QATYSU_TEST_PG_DSN")
    if not dsn:
        yield None
        return
    schema = f"qatysu_bench_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in dsn else "?"
    portal = open_portal(
        Settings(data_dir=root / "pg", db_url=f"{dsn}{sep}options=-csearch_path%3D{schema}")
    )
    try:
        yield portal
    finally:
        portal.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def import_csv(portal: Portal, city: City) -> float:
    """The city's import plan (schedule and roster before the period, late changes after)."""
    start = time.perf_counter()
    apply_plan(portal.engine, city.import_plan())
    return time.perf_counter() - start


CPU: list[float] = []  # process CPU seconds of every timed run, in order
LOAD: list[float] = []  # the machine's 1-minute load average when each run started


def reconcile_timed(
    portal: Portal, first: date, last: date, runs: int, settings: ReconcileSettings | None = None
) -> tuple[list[float], Result]:
    """Wall seconds of each run (CPU seconds and load averages go to CPU and LOAD)."""
    settings = settings or ReconcileSettings()
    zone = load_zone(settings.timezone)
    times, result = [], None
    for _ in range(runs):
        LOAD.append(os.getloadavg()[0])
        start, cpu = time.perf_counter(), time.process_time()
        result = run_reconciliation(portal.engine, first, last, settings, zone)
        times.append(time.perf_counter() - start)
        CPU.append(time.process_time() - cpu)
    assert result is not None
    return times, result


def score(city: City, result: Result) -> dict[str, Any]:
    """The run against the generator's ground truth (:attr:`City.truth`).

    ``attack_recall``: per class, the share of its fraudulent rows not ``verified``.
    ``honest_at_risk_rate``: honest confirmed rows with their own evidence (the child
    tapped in, or stayed from the lesson before) that are suspect or
    confirmed_without_presence; a child who forgot to tap is counted apart
    (``honest_forgot_tap_at_risk``: no evidence, nothing a rule can do). Rows of
    honest children in a lesson or day an attack touched (``collateral``) are
    counted apart too. ``honest_unverifiable_rate``: honest confirmed rows
    (forgotten taps included) that are confirmed_device_offline or present_unproven.
    """
    got = {(r.child_id, r.group_id, r.date): r.status for r in result.rows}
    by_class: dict[str, list[bool]] = defaultdict(list)
    evidence: list[str] = []
    base: list[str] = []
    forgot: list[str] = []
    collateral: list[str] = []
    features: dict[str, list[str]] = defaultdict(list)
    for key, t in city.truth.items():
        status = got.get(key, "missing")
        if t.label != HONEST:
            by_class[t.label].append(status != VERIFIED)
            continue
        if not t.confirmed:
            continue
        if "collateral" in t.features:
            collateral.append(status)
            continue
        base.append(status)
        if t.tapped:
            evidence.append(status)
            for f in t.features:
                features[f].append(status)
        elif "forgot_tap" in t.features:
            forgot.append(status)
    recall = {
        cls: (round(sum(v) / len(v), 6) if (v := by_class.get(cls)) else None)
        for cls in FRAUD_KINDS
    }
    fraud = [x for v in by_class.values() for x in v]
    unlabelled = Counter(s for k, s in got.items() if k not in city.truth)
    return {
        "rows": len(got),
        "attack_recall": recall,
        "attack_rows": {cls: len(by_class.get(cls, ())) for cls in FRAUD_KINDS},
        "fraud_rows": len(fraud),
        "fraud_recall": _share(fraud),
        "honest_rows": len(evidence),
        "honest_at_risk_rate": _share([s in AT_RISK for s in evidence]),
        "honest_unverifiable_rate": _share([s in UNVERIFIABLE for s in base]),
        "honest_confirmed_rows": len(base),
        "honest_forgot_tap_rows": len(forgot),
        "honest_forgot_tap_at_risk": _share([s in AT_RISK for s in forgot]),
        "collateral_rows": len(collateral),
        "collateral_at_risk": _share([s in AT_RISK for s in collateral]),
        "feature_at_risk": {
            f: {"rows": len(v), "at_risk": _share([s in AT_RISK for s in v])}
            for f, v in sorted(features.items())
        },
        "feature_unverifiable": {
            f: _share([s in UNVERIFIABLE for s in v]) for f, v in sorted(features.items())
        },
        "unlabelled_rows": dict(unlabelled),
    }


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 6) if flags else None


# ---------------------------------------------------------------- the risk queue


def risk_queue(city: City, link: LocalPortal) -> tuple[Result, list[Any]]:
    """The city reconciled in memory with every center's reads kept, and its risk queue
    (entries with center_id, week, score, highest first): the one call of
    :mod:`portal.reconcile.risk`; the reads give it the departures."""
    from portal.reconcile.risk import risk_queue as queue

    reads: dict[str, Any] = {}
    result = reconcile_local(
        city, link, ReconcileSettings(), observe=lambda c, ix: reads.__setitem__(c, ix.reads)
    )
    entries = queue(result, members=city.members(), lessons=city.lessons, reads=reads)
    return result, sorted(entries, key=lambda e: -float(e.score))


def _week(value: Any) -> tuple[int, int]:
    """An entry's week as (ISO year, ISO week), from a date or a string."""
    if isinstance(value, date):
        iso = value.isocalendar()
        return iso[0], iso[1]
    text = str(value)
    if "-W" in text:
        year, week = text.split("-W", 1)
        return int(year), int(week[:2])
    iso = date.fromisoformat(text[:10]).isocalendar()
    return iso[0], iso[1]


def fraud_weeks(city: City) -> set[tuple[str, int, int]]:
    center_of = {e.group_id: e.center_id for e in city.schedule}
    out = set()
    for (_, group, day), t in city.truth.items():
        if t.label != HONEST:
            iso = day.isocalendar()
            out.add((center_of[group], iso[0], iso[1]))
    return out


def risk_scores(city: City, entries: list[Any]) -> dict[str, Any]:
    """Precision of the first 10 entries, and whether every patient center is in the top 10 %."""
    bad = fraud_weeks(city)
    top10 = entries[:10]
    hits = sum((e.center_id, *_week(e.week)) in bad for e in top10)
    cut = math.ceil(len(entries) * 0.1)
    top = {e.center_id for e in entries[:cut]}
    patient = sorted(city.patient_centers)
    return {
        "precision_at_10": round(hits / len(top10), 6) if top10 else None,
        "entries": len(entries),
        "patient_centers": patient,
        "patient_in_top_10pct": all(c in top for c in patient) if patient else None,
    }


def main() -> None:
    args = parse_args(__doc__ or "")
    base = CityConfig(
        centers=150,
        groups_per_center=4,
        children_per_group=14,
        extra_children=100,
        first=date(2024, 4, 1),
        days=30,
        sign=False,
        seed=7,
        unsynced=0.1,
    )
    if args.quick:
        base = replace(base, centers=10, extra_children=0, days=14)
    runs = 3
    scale_runs = 3
    out: dict[str, Any] = {}
    lines: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="qatysu-bench-reconcile-"))

    # 1. A small signed city through the real ingest (the sample that shows the path works).
    sample_cfg = CityConfig(
        centers=2, days=7, seed=3, injected=0.3, upload_s=3600, first=base.first
    )
    with store("sqlite", root) as portal:
        assert portal is not None
        start = time.perf_counter()
        sample, _ = generate(sample_cfg, IngestUplink(portal.engine, portal.key, now=T0))
        ingest_s = time.perf_counter() - start
        import_csv(portal, sample)
        _, result = reconcile_timed(portal, sample_cfg.first, sample.last, 1)
        sample_score = score(sample, result)
    lines.append(
        f"Sample through the real ingest: {sample.record_count():,} signed records of "
        f"{sample_cfg.centers} centers in {ingest_s:.1f} s; fraud recall "
        f"{_pct(sample_score['fraud_recall'])} of {sample_score['fraud_rows']} rows, honest "
        f"at-risk rate {_pct(sample_score['honest_at_risk_rate'])} of "
        f"{sample_score['honest_rows']}."
    )

    # 2. The city-month, generated once, loaded into each back end.
    start = time.perf_counter()
    city, link = generate(base)
    gen_s = time.perf_counter() - start
    assert isinstance(link, LocalPortal)
    n_records = city.record_count()
    rows = []
    quality: dict[str, Any] = {}
    literal_quality: dict[str, Any] = {}
    run_load: dict[str, float] = {"sqlite": float("nan")}  # load average of the timed runs
    main_result: Result | None = None
    for kind in ("sqlite", "postgres"):
        with store(kind, root) as portal:
            if portal is None:
                out[f"{kind}_reconcile_s"] = out[f"{kind}_import_s"] = None
                rows.append([kind, "no DSN", "", "", "", "", ""])
                continue
            start = time.perf_counter()
            bulk_load(portal.engine, city, link, now=T0)
            load_s = time.perf_counter() - start
            import_s = import_csv(portal, city)
            times, result = reconcile_timed(portal, base.first, _last(base), runs)
            cpu = median(CPU[-runs:])
            out[f"{kind}_import_s"] = round(import_s, 3)
            out[f"{kind}_reconcile_s"] = round(median(times), 3)
            out[f"{kind}_reconcile_cpu_s"] = round(cpu, 3)
            run_load[kind] = median(LOAD[-runs:])
            rows.append(
                [
                    kind,
                    f"{import_s:.2f}",
                    f"{load_s:.1f}",
                    ", ".join(f"{t:.2f}" for t in times),
                    f"{median(times):.2f}",
                    f"{cpu:.2f}",
                    f"{median(LOAD[-runs:]):.1f}",
                ]
            )
            if kind == "sqlite":
                quality = score(city, result)
                # The shared-signer limit's cost: the same month with a limit of 3
                # (families of four accused) beside the default of 4 (decision 0843).
                three = ReconcileSettings(shared_signer_max=3)
                _, spec = reconcile_timed(portal, base.first, _last(base), 1, three)
                literal_quality = score(city, spec)
                main_result = result
    lines.append(
        f"City: {base.centers} centers, {base.centers * base.groups_per_center} groups, "
        f"{len(city.children):,} children, {base.days} days from {base.first}, "
        f"{n_records:,} records, {len(city.confirmations):,} confirmations "
        f"(generated in {gen_s:.0f} s)."
    )
    body = (
        "\n\n".join(lines)
        + "\n\n"
        + table(
            [
                "back end",
                f"import plan s ({len(city.import_plan())} files)",
                "bulk load s",
                "reconcile runs s",
                "median s",
                "median CPU s",
                "load avg",
            ],
            rows,
        )
    )
    no_ntp = quality["feature_at_risk"].get("no_ntp", {})
    family_4 = quality["feature_at_risk"].get("family_of_4", {})
    out.update(
        {
            "attack_recall": quality["attack_recall"],
            "fraud_recall": quality["fraud_recall"],
            "honest_at_risk_rate": quality["honest_at_risk_rate"],
            "honest_unverifiable_rate": quality["honest_unverifiable_rate"],
            "honest_forgot_tap_at_risk": quality["honest_forgot_tap_at_risk"],
            "unsynced_at_risk_rate": no_ntp.get("at_risk"),
            "honest_at_risk_rate_signer_max_3": literal_quality["honest_at_risk_rate"],
            "shared_signer_recall_signer_max_3": literal_quality["attack_recall"].get(
                "shared_signer"
            ),
        }
    )
    body += "\n\n" + table(
        ["measure", "value"],
        [
            ["rows", quality["rows"]],
            ["rows the generator did not make (status: count)", quality["unlabelled_rows"] or 0],
            ["fraudulent rows (all classes)", quality["fraud_rows"]],
            ["fraud recall (not verified)", _pct(quality["fraud_recall"])],
            ["honest confirmed rows with their own evidence", quality["honest_rows"]],
            ["honest at-risk rate", _pct(quality["honest_at_risk_rate"])],
            ["honest confirmed rows (forgotten taps included)", quality["honest_confirmed_rows"]],
            ["honest unverifiable rate", _pct(quality["honest_unverifiable_rate"])],
            [
                f"honest rows of forgotten taps ({quality['honest_forgot_tap_rows']}) at risk",
                _pct(quality["honest_forgot_tap_at_risk"]),
            ],
            [
                f"collateral rows ({quality['collateral_rows']}: honest children in an "
                "attacked lesson or day) at risk",
                _pct(quality["collateral_at_risk"]),
            ],
            ["devices that never report NTP sync", sum(d.never_synced for d in city.devices)],
            [
                "their honest rows at risk (proof bracket 900 s)",
                f"{_pct(no_ntp.get('at_risk'))} of {no_ntp.get('rows', 0)}",
            ],
            [
                "honest rows of families of four at risk (shared_signer_max 4)",
                f"{_pct(family_4.get('at_risk'))} of {family_4.get('rows', 0)}",
            ],
            [
                "honest at-risk rate with shared_signer_max 3",
                _pct(literal_quality["honest_at_risk_rate"]),
            ],
            [
                "shared_signer recall with shared_signer_max 3",
                _pct(literal_quality["attack_recall"].get("shared_signer")),
            ],
        ],
    )
    body += "\n\nRecall per attack class (share of its fraudulent rows not `verified`):\n\n"
    body += table(
        ["class", "fraudulent rows", "recall"],
        [
            [cls, quality["attack_rows"][cls], _pct(quality["attack_recall"][cls])]
            for cls in FRAUD_KINDS
        ],
    )
    body += "\n\nHonest rows with their own evidence, by feature of the honest model:\n\n"
    body += table(
        ["feature", "rows", "at risk", "unverifiable"],
        [
            [f, v["rows"], _pct(v["at_risk"]), _pct(quality["feature_unverifiable"][f])]
            for f, v in quality["feature_at_risk"].items()
        ],
    )

    # The risk queue: precision of its first 10 entries on the city-month, and whether
    # every patient center ranks in its top 10 % (the city-month and more cities).
    assert main_result is not None
    _, entries = risk_queue(city, link)
    first = risk_scores(city, entries)
    passed = [first["patient_in_top_10pct"]]
    extra = 4 if args.quick else 9
    for i in range(extra):
        more_cfg = replace(base, centers=base.centers if args.quick else 30,
                           seed=base.seed + 100 + i, extra_children=0)  # fmt: skip
        more, more_link = generate(more_cfg)
        assert isinstance(more_link, LocalPortal)
        _, more_entries = risk_queue(more, more_link)
        passed.append(risk_scores(more, more_entries)["patient_in_top_10pct"])
    judged = [p for p in passed if p is not None]
    out["risk_queue_precision_at_10"] = first["precision_at_10"]
    out["patient"] = round(sum(judged) / len(judged), 6) if judged else None
    body += (
        f"\n\nRisk queue: {first['entries']} entries; precision of the first 10 "
        f"(center-weeks with a fraudulent row) {_pct(first['precision_at_10'])}; every "
        f"patient center in the top 10 % in {sum(judged)} of {len(judged)} cities."
    )
    # 3. Scaling on SQLite: the same month with 1x, 2x, 4x the centers. Chunk k (the city
    # above, then more cities under other center prefixes) goes into every store >= k.
    scales = (1, 2, 4)
    records = dict.fromkeys(scales, 0)
    with store("sqlite", root) as s1, store("sqlite", root) as s2, store("sqlite", root) as s4:
        stores = {1: s1, 2: s2, 4: s4}
        for part in range(max(scales)):
            if part:
                del city, link
                city, link = generate(replace(base, prefix=f"S{part}C", seed=base.seed + part))
                assert isinstance(link, LocalPortal)
            for k in scales:
                portal = stores[k]
                if part < k and portal is not None:
                    records[k] += bulk_load(portal.engine, city, link, now=T0)
                    import_csv(portal, city)
        del city, link
        scale_rows = []
        for k in scales:
            portal = stores[k]
            assert portal is not None
            times, result = reconcile_timed(portal, base.first, _last(base), scale_runs)
            cpu = median(CPU[-scale_runs:])
            out[f"scale_{k}x_s"] = round(median(times), 3)
            out[f"scale_{k}x_cpu_s"] = round(cpu, 3)
            scale_rows.append(
                [
                    f"{k}x",
                    f"{records[k]:,}",
                    len(result.rows),
                    ", ".join(f"{t:.2f}" for t in times),
                    f"{median(times):.2f}",
                    f"{cpu:.2f}",
                    f"{median(times) / records[k] * 1e6:.2f}",
                    f"{cpu / records[k] * 1e6:.2f}",
                    f"{median(LOAD[-scale_runs:]):.1f}",
                ]
            )
    body += "\n\nScaling (SQLite, same month, k times the centers):\n\n" + table(
        [
            "scale",
            "records",
            "rows",
            "reconcile runs s",
            "median s",
            "median CPU s",
            "µs per record",
            "CPU µs per record",
            "load avg",
        ],
        scale_rows,
    )
    ratio2 = out["scale_2x_s"] / out["scale_1x_s"]
    ratio4 = out["scale_4x_s"] / out["scale_1x_s"]
    cratio2 = out["scale_2x_cpu_s"] / out["scale_1x_cpu_s"]
    cratio4 = out["scale_4x_cpu_s"] / out["scale_1x_cpu_s"]
    body += (
        f"\n\nRatios to 1x: wall 2x {ratio2:.2f}, 4x {ratio4:.2f}; CPU 2x {cratio2:.2f}, "
        f"4x {cratio4:.2f} (linear would be 2 and 4).\n\n"
        f"Goal: the city-month reconciled in under 10 s on SQLite, and at most 20 % "
        f"slower than the first release's 8.4 s: {out['sqlite_reconcile_s']:.1f} s here "
        f"({'met' if out['sqlite_reconcile_s'] < min(10, 8.4 * 1.2) else 'missed'}; "
        f"{out['sqlite_reconcile_cpu_s']:.1f} s of the process's CPU, at a load average "
        f"of {run_load['sqlite']:.1f}).\n\n"
        "Reconcile time is the wall time of `run_reconciliation` (read from the "
        "database, trusted time, rules, rows with evidence, totals not rendered), "
        f"median of {runs} runs ({scale_runs} for the scaling table) in one process, so "
        "every run after the first reads a warm page cache. The import plan is the "
        "city's files through `apply_import` at their simulated times (the same code as "
        "the CLI). "
        f"The load average column is the 1-minute load when each run started, on "
        f"{os.cpu_count()} cores (above the core count, wall times include waiting for "
        "a core; the process's CPU seconds are the steadier measure of the code). "
        + load_note(LOAD, "about one core")
    )
    shutil.rmtree(root, ignore_errors=True)
    finish("reconcile", "Reconciliation (city-month)", body, out, args)


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share:.4%}"


def _last(cfg: CityConfig) -> date:
    return cfg.first + timedelta(days=cfg.days - 1)


if __name__ == "__main__":
    main()
