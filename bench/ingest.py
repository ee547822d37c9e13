"""News ingestion end to end: 10,000 generated headlines through parse, dedup, scoring and aggregation.

The same code the app runs, stage by stage, in one process, on a database of its own:

1. parse: a news CSV (title, body, url, published_at) read by `finance.services.csv_preview` and
   `csv_rows` (the upload path: delimiter and encoding detection, per-row validation);
2. ingest: `finance.services.articles_ingest` (validation, content-hash dedup within the file and against the
   database, ticker detection from cashtags/symbols/aliases, near-duplicate clustering of syndicated copies),
   one call for the whole file as an upload does;
3. score: `finance.services.articles_score` in the worker's batches of 256 article ids (title plus body
   sentences through `mlcore.api.predict`, as served on CPU: dynamic int8 unless `MLCORE_CPU_INT8=none`);
4. aggregate: `finance.selectors.rollup_frames` for the 90 days (which first recomputes the sentiment rollup's
   days that scoring marked dirty), then per ticker/day (with the 7-day rolling mean), per sector/day,
   market/day, per ticker/week and movers (pandas), as the dashboards read them;
5. the same file again: everything is a duplicate, nothing is written (idempotency, timed too).

The headlines are generated (seeded) from the demo universe's 36 companies: templated events, 40% with a
one-sentence body, 8% syndicated rewrites of an earlier headline by another source, 2% exact repeats.
The classifier is all-MiniLM-L6-v2 with a 3-class head (`--model` to use a trained one, e.g. the app's);
its weights do not change its speed.

Goal being checked: the whole run (stages 1-4) under 60 s on 2 cores.

    .venv/bin/python bench/ingest.py [--headlines 10000] [--database-url sqlite:///var/bench/ingest.sqlite3]
        [--model PATH]

By default the database is a fresh SQLite file under var/bench/ (removed first); `--database-url` takes a
PostgreSQL URL instead (its tables are created by `migrate`; use an empty database). Tasks it would queue
go to an in-memory broker, so nothing reaches a running worker.
"""

import argparse
import csv
import io
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _common  # bench/ is sys.path[0] when this file runs as a script

EVENTS_UP = [
    "{name} beats quarterly profit estimates", "{name} raises full-year guidance", "{name} shares jump on {thing} deal",
    "{name} wins {size} contract from {buyer}", "{symbol} upgraded to buy at {broker}",
    "{name} lifts dividend by {pct}%", "{name} reports record {thing} sales",
]
EVENTS_DOWN = [
    "{name} misses revenue forecasts", "{name} cuts outlook as {thing} demand slows",
    "{name} shares slide after profit warning", "{symbol} downgraded to sell at {broker}",
    "{name} faces probe over {thing} accounts", "{name} to cut {n} jobs", "{name} recalls {thing} units",
]
EVENTS_FLAT = [
    "{name} to present at {broker} conference", "{name} names new chief financial officer",
    "{name} schedules {quarter} earnings call", "{name} completes previously announced {thing} sale",
    "{name} files annual report", "{symbol} holds annual general meeting",
]
THINGS = ["cloud", "battery", "retail", "mining", "freight", "insurance", "software", "chip", "energy", "housing"]
BROKERS = ["Halden Securities", "Marrow & Finch", "Corbel Capital", "Ashgrove Partners"]
BODIES = [
    "The company said the change takes effect next quarter.", "Analysts had expected a smaller move.",
    "Shares were little changed in early trading.", "The board approved the plan on Tuesday.",
    "Management will discuss the results with investors.", "The figures were published before the market opened.",
]
SOURCES = ["Harbor Wire", "Ledger Daily", "Northgate News", "Quay Street Journal", "Tidewater Markets"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--headlines", type=int, default=10_000, help="headlines to generate (default 10000)")
    parser.add_argument("--database-url", default="", help="database to use (default: a fresh SQLite file)")
    parser.add_argument("--model", default="", help="a trained 3-class classifier directory (default: MiniLM "
                                                    "with a fresh head; speed does not depend on the weights)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--threads", type=int, default=_common.DEFAULT_THREADS, help="torch threads (default 2)")
    parser.add_argument("--max-load", type=float, default=0.7,
                        help="wait until the 1-minute load average is below this before measuring (default 0.7)")
    parser.add_argument("--max-wait", type=float, default=600.0, help="seconds to wait for a quiet machine at most")
    return parser.parse_args(argv)


def generate_csv(companies: list[dict], n: int, seed: int) -> tuple[bytes, dict]:
    """A news CSV of `n` rows with syndicated rewrites and exact repeats; returns it and what it holds."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    rows, counts = [], {"original": 0, "syndicated": 0, "repeats": 0, "with_body": 0}
    while len(rows) < n:
        roll = rng.random()
        if rows and roll < 0.02:
            rows.append(dict(rng.choice(rows)))
            counts["repeats"] += 1
            continue
        if rows and roll < 0.10:
            base = rng.choice(rows[-200:])
            suffix = rng.choice([" - report", " -sources", " (update)", ", filing shows"])
            rows.append({**base, "title": base["title"] + suffix, "source": rng.choice(SOURCES),
                         "url": base["url"] + "?syndicated=" + str(len(rows)),
                         "published_at": (datetime.fromisoformat(base["published_at"])
                                          + timedelta(minutes=rng.randint(5, 240))).isoformat()})
            counts["syndicated"] += 1
            continue
        company = rng.choice(companies)
        template = rng.choice(rng.choice([EVENTS_UP, EVENTS_DOWN, EVENTS_FLAT]))
        name = rng.choice([company["name"], *company.get("aliases", [])])
        title = template.format(name=name, symbol=f"${company['symbol']}", thing=rng.choice(THINGS),
                                broker=rng.choice(BROKERS), buyer=rng.choice(companies)["name"],
                                size=rng.choice(["$40m", "$120m", "$1.2bn"]), pct=rng.randint(2, 15),
                                n=rng.randint(50, 2000), quarter=rng.choice(["Q1", "Q2", "Q3", "Q4"]))
        title += f" ({rng.randint(1, 10**6)})"  # keeps templated originals from being near-copies of each other
        body = rng.choice(BODIES) if rng.random() < 0.4 else ""
        counts["with_body"] += bool(body)
        published = now - timedelta(minutes=rng.randint(60, 89 * 24 * 60))
        rows.append({"title": title, "body": body, "url": f"https://news.example/{len(rows)}",
                     "published_at": published.isoformat(), "source": rng.choice(SOURCES)})
        counts["original"] += 1
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["title", "body", "url", "published_at", "source"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8"), counts


def classifier_dir(args) -> str:
    if args.model:
        return args.model
    path = _common.RESULTS_DIR / "ingest-classifier"
    if not (path / "config.json").exists():
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from mlcore import specs
        from mlcore.runtime import write_sidecar

        labels = ["positive", "neutral", "negative"]
        base = specs.resolve("package:minilm")
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=3, id2label=dict(enumerate(labels)), label2id={k: i for i, k in enumerate(labels)})
        model.save_pretrained(path)
        AutoTokenizer.from_pretrained(base).save_pretrained(path)
        write_sidecar(path, {"family": "classifier", "labels": labels})
    return str(path)


def prepare_database(args) -> str:
    if args.database_url:
        url = args.database_url
    else:
        db = _common.RESULTS_DIR / "ingest.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{db}"
    os.environ["DATABASE_URL"] = url
    os.environ["CELERY_BROKER_URL"] = "memory://"
    return url


def main(argv=None) -> int:
    args = parse_args(argv)
    _common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    url = prepare_database(args)
    started_all = time.monotonic()
    _common.setup_django()
    _common.set_threads(args.threads)
    from django.core.management import call_command

    print(f"Database {url.split('@')[-1]}: migrating ...")
    call_command("migrate", verbosity=0)

    import json

    from django.utils import timezone

    from finance import selectors
    from finance.models import Article, ArticleSentiment, Company, SentimentDay, Source
    from finance.seed import DEMO_UNIVERSE
    from finance.services import SCORE_BATCH, articles_ingest, articles_score, csv_preview, csv_rows
    from mlcore import services as ml_services
    from mlcore.models import Family, Task

    universe = json.loads(Path(DEMO_UNIVERSE).read_text())
    for c in universe["companies"]:
        Company.objects.update_or_create(symbol=c["symbol"], defaults={
            "name": c["name"], "sector": c["sector"], "aliases": c.get("aliases", [])})
    model = classifier_dir(args)
    version = ml_services.model_version_register(
        task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec=model, name="ingest bench classifier",
        label_map=["positive", "neutral", "negative"])
    ml_services.model_version_activate(version=version)
    from mlcore import api as ml

    ml.predict(Task.FINANCE_SENTIMENT, ["warm-up: the model loads before the clock starts"])

    data, made = generate_csv(universe["companies"], args.headlines, args.seed)
    print(f"Generated {args.headlines} rows ({len(data) / 1e6:.1f} MB): {made}")
    load_before, waited = _common.wait_for_quiet_machine(args.max_load, args.max_wait)
    info = _common.machine(args.threads)
    print("Machine: " + _common.describe(info))

    stages = {}
    with _common.OtherLoad() as other:
        t0 = time.perf_counter()
        preview = csv_preview(data=data, filename="bench.csv")
        mapping = {k: v for k, v in preview.guess.items() if v}
        parsed = csv_rows(data=data, filename="bench.csv", mapping=mapping)
        raw_rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
        by_source: dict[str, list[dict]] = {}
        for row in parsed.rows:  # the source column picks the Source, as one upload per source would
            by_source.setdefault(raw_rows[row["row"] - 2]["source"], []).append(row)
        stages["parse"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        summary = {"accepted": 0, "duplicates": 0, "rejected": 0, "clustered": 0}
        ids = []
        for name, rows in by_source.items():
            source, _ = Source.objects.get_or_create(name=name, defaults={"kind": Source.Kind.CSV})
            result = articles_ingest(source=source, rows=rows)
            ids += result.accepted
            for key, value in result.summary.items():
                summary[key] += value
        stages["ingest"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        scored = sum(articles_score(article_ids=ids[i : i + SCORE_BATCH]) for i in range(0, len(ids), SCORE_BATCH))
        stages["score"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        end = timezone.localdate()
        scope = SentimentDay.Scope
        frames = selectors.rollup_frames(scope.COMPANY, scope.SECTOR, scope.MARKET, start=end - timedelta(days=89),
                                         end=end)  # recomputes the days scoring marked dirty first
        companies = frames[scope.COMPANY]
        aggregates = {
            "ticker_days": len(selectors.daily_by_ticker(companies)),
            "sector_days": len(selectors.daily_by_sector(frames[scope.SECTOR])),
            "market_days": len(selectors.daily_market(frames[scope.MARKET])),
            "ticker_weeks": len(selectors.weekly_by_ticker(companies)),
            "movers": sum(len(v) for v in selectors.movers(companies, end=end).values()),
        }
        stages["aggregate"] = time.perf_counter() - t0
        total = sum(stages.values())

        t0 = time.perf_counter()
        again = {"accepted": 0, "duplicates": 0}
        for name, rows in by_source.items():
            result = articles_ingest(source=Source.objects.get(name=name), rows=rows)
            again["accepted"] += len(result.accepted)
            again["duplicates"] += len(result.duplicates)
        stages["same file again"] = time.perf_counter() - t0

    counts = {"articles": Article.objects.count(),
              "copies": Article.objects.filter(cluster_leader__isnull=False).count(),
              "sentiments": ArticleSentiment.objects.count(), "rollup_company_rows": len(companies)}
    sentences = sum(1 + bool(r["body"]) for r in parsed.rows)
    print(f"\nIngest summary {summary}; {scored} articles scored ({sentences} sentences incl. duplicates' rows); "
          f"database {counts}; aggregates {aggregates}; second load {again}")
    rows = [[name, f"{seconds:.2f}", f"{args.headlines / seconds:,.0f}"] for name, seconds in stages.items()]
    rows.insert(4, ["total (parse to aggregates)", f"{total:.2f}", f"{args.headlines / total:,.0f}"])
    print(_common.table(["stage", "seconds", "headlines/s"], rows))
    print(f"\nGoal: under 60 s for {args.headlines} headlines: {'met' if total < 60 else 'NOT met'} ({total:.1f} s). "
          + _common.describe_other_load(other.result()))
    path = _common.write_result("ingest", {
        "command": " ".join(sys.argv), "database": url.split("@")[-1], "generated": made, "summary": summary,
        "counts": counts, "aggregates": aggregates, "second_load": again, "stages_s": stages, "total_s": total,
        "machine": info, "load_before": load_before, "waited_s": waited, "other_load": other.result(),
        "wall_s": time.monotonic() - started_all,
    })
    print(f"Saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
