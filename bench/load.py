"""Load test of the running app: latency percentiles and errors under concurrent clients, on PostgreSQL.

Two modes, each against the real server (gunicorn as in the Procfile) on a database of its own:

finance (default)
    1. load: `--articles` synthetic finance articles (default 100,000) over `--companies` companies (200) in 11
       sectors and `--days` days (90, ending today), 1-3 ticker mentions each, one sentiment score each from an
       active sentiment version, ~3% syndicated copies, 20 API import runs per analyst; written with COPY.
       Nothing is scored by a model: the scores are generated, as the dashboards only read them.
    2. serve: gunicorn with `--workers` x `--threads` (Procfile: 2 x 4), DEBUG off. The API's per-user rate limit
       is raised for the run: clients that never pause send up to 20 API calls a second each, which the default
       (1,200 a minute) would refuse; an analyst's script is what it is for.
    3. clients: `--clients` analysts (20), each its own user, logged in through the login form (session) and
       holding an API token; each loops over a URL mix for `--duration` seconds (60) on one keep-alive
       connection: dashboard 25%, ticker page 30%, sector page 15%, API import list 15%, API import detail 15%.
       Requests in the first `--warmup` seconds (5) are not counted.
    With `--edit-every S`, an analyst changes a mention's relevance every S seconds through the service meanwhile
    (the rollup day it touches is recomputed by the next read, and every shared cached page is dropped).
    Reports per URL kind: requests, p50/p95/p99 latency, errors (status >= 400 or a broken connection).
    Goal being checked: p95 < 150 ms on 2 cores.

students (`--mode students`)
    1. load: the demo course (`mlcore_bootstrap`, `education_setup --demo`: real packaged models, a few
       minutes the first time) and `--clients` students (default 5 in this mode) enrolled in it.
    2. serve: gunicorn as above, and the Celery workers of the Procfile, with the real models: `worker` (queues
       default,ml, concurrency 2: explanations, and gradings when a child is free) and `quick` (queue default,
       concurrency 1: the gradings, which are routed to `default`). The broker's queues are purged first.
    3. clients: each student asks the tutor a question about the course material (answered inside the request:
       retrieval with MiniLM), then does what the answer page's script does: loads the page and polls for the
       explanation (SmolLM2, written by the worker) every second, and submits a new version of an essay, in
       turn, with `--think` seconds between actions. Per-student rate limits are raised for the run (they would
       refuse a load test, not a class).
    Reports tutor answer latency, explanation latency (from the answer page's first poll to the explanation;
    `tutor_explanation_reused` counts those already there at the first poll, reused from an earlier answer),
    essay submit latency, and time-to-grade (grade row written minus version submitted, both server clock)
    for every version submitted, waiting up to `--grade-wait` s after the run.

    .venv/bin/python bench/load.py [--database-url postgres://postgres@127.0.0.1:5432/parlance_load]
        [--articles 100000] [--clients 20] [--duration 60] [--skip-load] [--mode finance|students]

The load step wipes the finance articles (or resets the bench students' essays) of that database: it refuses
a database whose name has neither "load" nor "bench" in it. The load generator runs on the same machine as
the server and shares its cores (its CPU use is printed). Results: a table on stdout and
var/bench/load-<mode>-<timestamp>.json.
"""

import argparse
import http.client
import io
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _common  # bench/ is sys.path[0] when this file runs as a script

VENV_BIN = Path(sys.executable).parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/parlance_load"
DEFAULT_BROKER = "redis://127.0.0.1:6379/14"
PASSWORD = "load-bench-password"
SECTORS = ["Technology", "Financials", "Health Care", "Energy", "Industrials", "Consumer Staples",
           "Consumer Discretionary", "Utilities", "Materials", "Real Estate", "Communication Services"]
NAME_A = ["North", "Silver", "Blue", "Iron", "Harbor", "Summit", "Cedar", "Granite", "Bright", "Atlas", "Pioneer",
          "Crescent", "Falcon", "Meridian", "Orchard", "Quarry", "Redwood", "Sterling", "Tidal", "Vantage"]
NAME_B = ["wind", "gate", "field", "stone", "brook", "ridge", "point", "wave", "line", "works"]
NAME_C = ["Holdings", "Group", "Systems", "Industries", "Partners", "Energy", "Labs", "Capital", "Foods", "Motors"]
HEADLINES = {
    "positive": ["{name} beats quarterly profit estimates", "{name} raises full-year guidance",
                 "{symbol} upgraded to buy", "{name} lifts dividend by {pct}%", "{name} reports record {thing} sales"],
    "negative": ["{name} misses revenue forecasts", "{name} cuts outlook as {thing} demand slows",
                 "{name} shares slide after profit warning", "{symbol} downgraded to sell", "{name} to cut {n} jobs"],
    "neutral": ["{name} to present at industry conference", "{name} names new chief financial officer",
                "{name} schedules earnings call", "{name} files annual report", "{symbol} holds annual meeting"],
}
THINGS = ["cloud", "battery", "retail", "mining", "freight", "insurance", "software", "chip", "energy", "housing"]
MIX = [("dashboard", 25), ("ticker", 30), ("sector", 15), ("api_list", 15), ("api_detail", 15)]
QUESTIONS = [
    "What are the three parts of an essay?", "What does the introduction of an essay do?",
    "What makes a thesis statement strong?", "Where does the thesis statement usually go?",
    "What is a topic sentence?", "What does PEEL stand for?", "Why do writers cite sources?",
    "What is the difference between quoting and paraphrasing?", "What is plagiarism?",
    "What does the conclusion of an essay do?", "How should a body paragraph be organised?",
    "When should I use a quotation instead of a paraphrase?",
]
ESSAY_SENTENCES = [
    "Phones in the classroom distract students from the lesson and from each other.",
    "Many teachers report that notifications interrupt explanations several times an hour.",
    "On the other hand, a phone can be a calculator, a dictionary and a camera for the whiteboard.",
    "Schools should therefore set clear rules rather than ban phones outright.",
    "For example, phones could stay in bags unless the teacher asks the class to use them.",
    "Free public transport would cut traffic in city centres and clean the air.",
    "Critics argue that someone has to pay, and that taxes would rise for everyone.",
    "However, cities such as Tallinn have shown that ridership rises when fares disappear.",
    "In conclusion, the benefits for families on low incomes outweigh the cost.",
    "Evidence from several studies suggests that students remember less when they multitask.",
    "A fair policy listens to students as well as to parents and teachers.",
    "The strongest argument is that learning needs attention, and attention is easily lost.",
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["finance", "students"], default="finance")
    parser.add_argument("--database-url", default=os.environ.get("LOAD_DATABASE_URL", DEFAULT_DB),
                        help=f"PostgreSQL database of the bench, created when missing (default {DEFAULT_DB})")
    parser.add_argument("--broker-url", default=os.environ.get("LOAD_BROKER_URL", DEFAULT_BROKER),
                        help=f"Celery broker of the server and worker (default {DEFAULT_BROKER})")
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--companies", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--clients", type=int, default=None, help="concurrent clients (finance 20, students 5)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of measured load (default 60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of uncounted requests first (default 5)")
    parser.add_argument("--skip-load", action="store_true", help="use the data already in the database")
    parser.add_argument("--edit-every", type=float, default=0.0,
                        help="finance: an analyst edits a mention's relevance every this many seconds (0: never)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (Procfile: 2)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (Procfile: 4)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--think", type=float, default=1.0, help="students: seconds between actions (default 1)")
    parser.add_argument("--grade-wait", type=float, default=300.0,
                        help="students: seconds to wait after the run for pending grades (default 300)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-load", type=float, default=1.0,
                        help="wait until the 1-minute load average is below this before measuring (default 1.0)")
    parser.add_argument("--max-wait", type=float, default=300.0,
                        help="seconds to wait for a quiet machine at most (default 300; 0 = do not wait)")
    args = parser.parse_args(argv)
    if args.clients is None:
        args.clients = 20 if args.mode == "finance" else 5
    return args


# --- database -------------------------------------------------------------------------------------------


def prepare_database(url: str) -> None:
    """Create the bench database when it is missing; refuse one that does not look like a bench database."""
    parsed = urllib.parse.urlparse(url)
    name = parsed.path.lstrip("/")
    if parsed.scheme not in ("postgres", "postgresql", "pgsql"):
        raise SystemExit("load.py measures the production stack: --database-url must be a PostgreSQL URL.")
    if "load" not in name and "bench" not in name:
        raise SystemExit(f"Refusing database {name!r}: the load step rewrites it; use a name with 'load' or 'bench'.")
    import psycopg

    admin = parsed._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"Created database {name}")


def company_universe(n: int, rng: random.Random) -> list[dict]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    symbols, names = set(), set()
    companies = []
    while len(companies) < n:
        symbol = "".join(rng.choice(letters) for _ in range(rng.choice([3, 4])))
        name = f"{rng.choice(NAME_A)}{rng.choice(NAME_B)} {rng.choice(NAME_C)}"
        if symbol in symbols or name in names:
            continue
        symbols.add(symbol)
        names.add(name)
        companies.append({"symbol": symbol, "name": name, "sector": SECTORS[len(companies) % len(SECTORS)]})
    return companies


def _copy(cursor, model, fields: list[str], rows) -> int:
    """COPY rows (tuples in `fields` order) into `model`'s table; returns the count."""
    columns = ", ".join(model._meta.get_field(f).column for f in fields)
    count = 0
    with cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def load_finance(args, analysts) -> dict:
    """Write the synthetic news history: companies, sources, articles, mentions, scores and API import runs."""
    from django.db import connection, transaction

    from finance.models import Article, ArticleSentiment, ArticleTicker, Company, IngestRun, Source
    from finance.services.ingest import content_hash
    from finance.services.rollup import rollup_rebuild
    from mlcore.models import Family, ModelVersion, Task

    rng = random.Random(args.seed)
    started = time.perf_counter()
    universe = company_universe(args.companies, rng)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {ArticleSentiment._meta.db_table}, {ArticleTicker._meta.db_table}, "
                           f"{Article._meta.db_table}, {IngestRun._meta.db_table} RESTART IDENTITY CASCADE")
        Company.objects.filter(symbol__in=[c["symbol"] for c in universe]).delete()
        companies = Company.objects.bulk_create([Company(**c, aliases=[c["name"].split()[0]]) for c in universe])
        sources = [Source.objects.get_or_create(name=name, defaults={"kind": Source.Kind.API})[0]
                   for name in ("Load Wire", "Market Desk", "Daily Ledger", "Exchange News", "Sector Watch")]
        # An active sentiment version whose scores are generated below; written without the activation signal,
        # which would queue a re-scoring of the whole history.
        ModelVersion.objects.filter(task=Task.FINANCE_SENTIMENT, state=ModelVersion.State.ACTIVE).update(
            state=ModelVersion.State.READY)
        version = ModelVersion.objects.create(
            task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec="package:minilm",
            name="load bench (generated scores)", label_map=["positive", "neutral", "negative"],
            state=ModelVersion.State.ACTIVE, activated_at=datetime.now(UTC))
        now = datetime.now(UTC)
        first = now - timedelta(days=args.days)
        articles, labels = [], []
        for i in range(args.articles):
            company = companies[min(int(rng.paretovariate(1.2)) - 1, len(companies) - 1)
                                if rng.random() < 0.5 else rng.randrange(len(companies))]
            label = rng.choices(["positive", "neutral", "negative"], weights=[35, 40, 25])[0]
            title = rng.choice(HEADLINES[label]).format(
                name=company.name, symbol=company.symbol, pct=rng.randint(2, 30), thing=rng.choice(THINGS),
                n=rng.randint(2, 90) * 100)
            title = f"{title} ({i})"
            body = f"{company.name} ({company.symbol}) said on the day that {rng.choice(THINGS)} trading continued."
            published = first + timedelta(seconds=rng.uniform(0, args.days * 86400))
            articles.append((rng.choice(sources).pk, title, body, f"https://news.example/{i}", published,
                             content_hash(title, body), now))
            labels.append((label, company))
        with connection.cursor() as cursor:
            raw = cursor.cursor
            _copy(raw, Article, ["source", "title", "body", "url", "published_at", "content_hash", "created_at"],
                  articles)
            ids = [row[0] for row in raw.execute(f"SELECT id FROM {Article._meta.db_table} ORDER BY id").fetchall()]
            mentions, scores = [], []
            for article_id, (label, company) in zip(ids, labels, strict=True):
                mentioned = {company.pk: 1.0}
                for _ in range(rng.choice([0, 0, 1, 2])):
                    mentioned.setdefault(rng.choice(companies).pk, round(rng.uniform(0.2, 0.8), 2))
                for company_id, relevance in mentioned.items():
                    mentions.append((article_id, company_id, relevance, "name"))
                p = {"positive": [0.7, 0.2, 0.1], "neutral": [0.15, 0.7, 0.15], "negative": [0.1, 0.2, 0.7]}[label]
                jitter = [max(0.01, x + rng.uniform(-0.08, 0.08)) for x in p]
                total = sum(jitter)
                pos, neu, neg = (x / total for x in jitter)
                scores.append((article_id, version.pk, label, pos, neu, neg, round(pos - neg, 4), "[]", now))
            n_mentions = _copy(raw, ArticleTicker, ["article", "company", "relevance", "detected_by"], mentions)
            _copy(raw, ArticleSentiment, ["article", "model_version", "label", "p_positive", "p_neutral", "p_negative",
                                          "score", "sentences", "created_at"], scores)
            # ~3% syndicated copies of the article before them (from another source, counted once in aggregates).
            raw.execute(f"UPDATE {Article._meta.db_table} SET cluster_leader_id = id - 1 WHERE id % 33 = 0 AND id > 1")
        for user in analysts:
            IngestRun.objects.bulk_create([
                IngestRun(user=user, source=sources[k % len(sources)], via=IngestRun.Via.API, rows=100 + k,
                          accepted=90 + k, duplicates=8, rejected=2, clustered=3,
                          problems=[{"row": r, "title": f"Row {r}", "reason": "No published date.", "kind": "rejected"}
                                    for r in range(2)])
                for k in range(20)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    seconds = time.perf_counter() - started
    print(f"Loaded {len(ids):,} articles, {n_mentions:,} mentions, {len(companies)} companies in {seconds:.0f} s")
    # COPY went around the services, so the dashboards' rollup is rebuilt as `manage.py finance_rollup` does.
    started = time.perf_counter()
    days = rollup_rebuild()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    rollup_s = time.perf_counter() - started
    print(f"Rebuilt the sentiment rollup of {days} days in {rollup_s:.1f} s")
    return {"articles": len(ids), "mentions": n_mentions, "companies": len(companies), "load_s": round(seconds, 1),
            "rollup_days": days, "rollup_s": round(rollup_s, 1)}


def bench_users(prefix: str, n: int, role) -> list:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    User = get_user_model()
    group = Group.objects.get_or_create(name=role.value)[0]
    users = []
    for i in range(1, n + 1):
        user, created = User.objects.get_or_create(username=f"{prefix}{i:02d}")
        if created or not user.check_password(PASSWORD):
            user.set_password(PASSWORD)
            user.save()
        user.groups.add(group)
        users.append(user)
    return users


# --- HTTP clients ---------------------------------------------------------------------------------------


class FormPageError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Browser:
    """One user's keep-alive connection and cookies; `request` returns (status, headers, body, seconds)."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None):
        sent = {"Host": "localhost", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            sent["Referer"] = f"http://localhost{path}"
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=sent)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed the idle keep-alive connection (gunicorn: after 2 s): a browser reconnects and
                # sends again, and so do we, once; the time counted is the second attempt's.
                self._reconnect()
                if attempt == 2:
                    return 0, {}, b"", time.perf_counter() - started
            except (OSError, http.client.HTTPException):
                self._reconnect()
                return 0, {}, b"", time.perf_counter() - started
        seconds = time.perf_counter() - started
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, response.headers, data, seconds

    def _reconnect(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)

    def csrf_form(self, path: str) -> str:
        status, _, data, _ = self.request("GET", path)
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', data)
        if status != 200 or not match:
            raise FormPageError(status, f"GET {path}: {status}, no CSRF token in the page")
        return match.group(1).decode()

    def login(self, username: str) -> None:
        token = self.csrf_form("/accounts/login/")
        status, headers, _, _ = self.request("POST", "/accounts/login/", form={
            "username": username, "password": PASSWORD, "csrfmiddlewaretoken": token})
        if status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"login of {username} failed: {status}")


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.latencies: dict[str, list[float]] = {}
        self.errors: dict[str, dict[str, int]] = {}

    def add(self, kind: str, seconds: float | None, error: str | None = None) -> None:
        """One request (or graded essay): its time, and what went wrong if anything; None: no time to count."""
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if seconds is not None:
                self.latencies.setdefault(kind, []).append(seconds)
            if error:
                by = self.errors.setdefault(kind, {})
                by[error] = by.get(error, 0) + 1

    def summary(self, duration: float) -> dict:
        out = {}
        for kind, count in sorted(self.counts.items()):
            ordered = sorted(self.latencies.get(kind, []))
            errors = self.errors.get(kind, {})
            out[kind] = {"requests": count, "per_s": round(count / duration, 1),
                         "p50_ms": round(1000 * percentile(ordered, 50), 1),
                         "p95_ms": round(1000 * percentile(ordered, 95), 1),
                         "p99_ms": round(1000 * percentile(ordered, 99), 1),
                         "max_ms": round(1000 * ordered[-1], 1) if ordered else None,
                         "errors": sum(errors.values()), "error_kinds": errors}
        return out


def print_summary(title: str, summary: dict) -> None:
    print(f"\n{title}")
    rows = [[kind, s["requests"], s["per_s"], s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"], s["errors"],
             ", ".join(f"{k}: {v}" for k, v in s["error_kinds"].items())] for kind, s in summary.items()]
    print(_common.table(["kind", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "which"],
                        rows))


# --- server processes -----------------------------------------------------------------------------------


def server_env(args, **extra) -> dict:
    env = dict(os.environ)
    env.update({"DATABASE_URL": args.database_url, "CELERY_BROKER_URL": args.broker_url, "REDIS_URL": args.broker_url,
                "DJANGO_DEBUG": "0", **extra})
    return env


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    handle = open(log, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, cwd=_common.REPO, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used so far by the live processes of process group `pgid` (the server and its workers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...; utime and stime are 12 and 13
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_report(load: dict, server_s: float) -> dict:
    """Split the machine's busy CPU while measuring into load generator, server (and worker), and the rest."""
    cores = len(os.sched_getaffinity(0))
    others = max(0.0, load["others_cpu_s"] - server_s)
    return {**load, "server_cpu_s": round(server_s, 1), "others_cpu_s": round(others, 1),
            "server_share_of_cores": round(server_s / (load["wall_s"] * cores), 3),
            "others_share_of_cores": round(others / (load["wall_s"] * cores), 3)}


def describe_cpu(cpu: dict) -> str:
    return (f"CPU while measuring ({cpu['wall_s']:.0f} s): server {cpu['server_cpu_s']:.0f} s, load generator "
            f"{cpu['own_cpu_s']:.0f} s, other processes {cpu['others_cpu_s']:.0f} s "
            f"({100 * cpu['others_share_of_cores']:.0f}% of the cores)")


def start_server(args, env: dict) -> subprocess.Popen:
    log = _common.RESULTS_DIR / f"load-{args.mode}-gunicorn.log"
    command = [str(VENV_BIN / "gunicorn"), "core.wsgi", "--config", "python:core.gunicorn_conf",
               "--bind", f"127.0.0.1:{args.port}", "--workers", str(args.workers), "--threads", str(args.threads),
               "--timeout", "120", "--access-logfile", "-"]
    server = start(command, env, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited ({server.returncode}); see {log}")
        try:
            status = Browser(args.port).request("GET", "/accounts/login/")[0]
            if status == 200:
                print(f"Server: gunicorn, {args.workers} workers x {args.threads} threads on :{args.port} "
                      f"(log {log})")
                return server
        except OSError:
            pass
        time.sleep(0.5)
    stop(server)
    raise SystemExit(f"gunicorn did not answer within 120 s; see {log}")


# --- finance mode ---------------------------------------------------------------------------------------


def run_finance(args) -> dict:
    from django.db.models import Count
    from rest_framework.authtoken.models import Token

    from core.roles import Role
    from finance.models import Company, IngestRun

    analysts = bench_users("load-analyst-", args.clients, Role.ANALYST)
    loaded = {} if args.skip_load else load_finance(args, analysts)
    symbols = list(Company.objects.annotate(n=Count("mentions")).filter(n__gt=0).values_list("symbol", flat=True))
    sectors = sorted(set(Company.objects.filter(symbol__in=symbols).values_list("sector", flat=True)))
    if not symbols:
        raise SystemExit("No articles in the database: run without --skip-load first.")
    tokens = {u.pk: Token.objects.get_or_create(user=u)[0].key for u in analysts}
    runs = {u.pk: list(IngestRun.objects.filter(user=u).values_list("pk", flat=True)) for u in analysts}
    from django.db import connections

    connections.close_all()

    server = start_server(args, server_env(args, API_THROTTLE_USER="100000/minute"))
    recorder = Recorder()
    try:
        browsers = []
        for user in analysts:
            browser = Browser(args.port)
            browser.login(user.username)
            browsers.append((user, browser))
        print(f"{len(browsers)} analysts logged in; {args.warmup:.0f} s warm-up, then {args.duration:.0f} s measured")
        _common.wait_for_quiet_machine(args.max_load, args.max_wait)
        info = _common.machine(threads=args.threads)
        kinds = [k for k, _ in MIX]
        weights = [w for _, w in MIX]
        t0 = time.monotonic()
        measure_from, stop_at = t0 + args.warmup, t0 + args.warmup + args.duration

        def client(index: int, user, browser: Browser):
            rng = random.Random(args.seed * 1000 + index)
            api = {"Authorization": f"Token {tokens[user.pk]}", "Accept": "application/json"}
            while (now := time.monotonic()) < stop_at:
                kind = rng.choices(kinds, weights)[0]
                if kind == "dashboard":
                    path, headers = "/finance/dashboard/", {}
                elif kind == "ticker":
                    path, headers = f"/finance/ticker/{rng.choice(symbols)}/", {}
                elif kind == "sector":
                    path, headers = f"/finance/sectors/{urllib.parse.quote(rng.choice(sectors))}/", {}
                elif kind == "api_list":
                    path, headers = "/api/v1/finance/runs/", api
                else:
                    path, headers = f"/api/v1/finance/runs/{rng.choice(runs[user.pk])}/", api
                status, _, _, seconds = browser.request("GET", path, headers=headers)
                if now >= measure_from:
                    recorder.add(kind, seconds, None if status == 200 else str(status or "connection"))

        edits = []

        def editor():
            """An analyst changing a mention's relevance every `--edit-every` s through the service, as the app
            does: its day of the rollup is recomputed by the next read, and every cached page is dropped."""
            from django.db import connection

            from finance.models import ArticleTicker
            from finance.services.companies import mention_set_relevance

            rng = random.Random(args.seed)
            recent = list(ArticleTicker.objects.filter(
                article__published_at__gte=datetime.now(UTC) - timedelta(days=29)).values_list("pk", flat=True)[:5000])
            try:
                while time.monotonic() < stop_at - args.edit_every:
                    time.sleep(args.edit_every)
                    mention = ArticleTicker.objects.get(pk=rng.choice(recent))
                    mention_set_relevance(mention=mention, relevance=rng.choice([0.3, 0.6, 1.0]), user=analysts[0])
                    edits.append(time.monotonic())
            finally:
                connection.close()

        threads = [threading.Thread(target=client, args=(i, u, b), daemon=True) for i, (u, b) in enumerate(browsers)]
        if args.edit_every:
            threads.append(threading.Thread(target=editor, daemon=True))
        server_cpu = group_cpu_seconds(server.pid)
        with _common.OtherLoad() as load:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        cpu = cpu_report(load.result(), group_cpu_seconds(server.pid) - server_cpu)
        # A request started before the end is waited for: the measured window ends with the last one.
        window = max(args.duration, time.monotonic() - measure_from)
    finally:
        stop(server)
    summary = recorder.summary(window)
    everything = [s for values in recorder.latencies.values() for s in values]
    ordered = sorted(everything)
    total_errors = sum(s["errors"] for s in summary.values())
    total = sum(recorder.counts.values())
    summary["all"] = {"requests": total, "per_s": round(total / window, 1),
                      "p50_ms": round(1000 * percentile(ordered, 50), 1),
                      "p95_ms": round(1000 * percentile(ordered, 95), 1),
                      "p99_ms": round(1000 * percentile(ordered, 99), 1),
                      "max_ms": round(1000 * ordered[-1], 1) if ordered else None,
                      "errors": total_errors, "error_kinds": {}}
    print_summary(f"finance: {args.clients} clients, {args.duration:.0f} s (window {window:.0f} s with the last "
                  f"requests), {len(symbols)} companies", summary)
    p95 = summary["all"]["p95_ms"]
    print(f"\nGoal p95 < 150 ms: {'met' if p95 < 150 else 'NOT met'} (p95 {p95} ms over all requests)")
    print(describe_cpu(cpu) + "; the warm-up is included")
    if args.edit_every:
        print(f"{len(edits)} mention edits during the run (one every {args.edit_every:g} s)")
    return {"machine": info, "loaded": loaded, "urls": summary, "cpu": cpu, "window_s": round(window, 1),
            "goal_p95_ms": 150, "goal_met": p95 < 150, "edits": len(edits)}


# --- students mode --------------------------------------------------------------------------------------


def load_students(args) -> dict:
    from django.core.management import call_command

    from core.roles import Role
    from education import seed
    from education.models import Course

    started = time.perf_counter()
    if not Course.objects.filter(title=seed.demo_course_title()).exists():
        print("Loading the demo course with the real models (a few minutes the first time) ...")
        quiet = io.StringIO()  # demo_setup prints the demo accounts' passwords; the bench logs in its own users
        call_command("demo_setup", stdout=quiet)
        call_command("mlcore_bootstrap", stdout=quiet)
        call_command("education_setup", "--demo", stdout=quiet)
    course = Course.objects.get(title=seed.demo_course_title())
    students = bench_users("load-student-", args.clients, Role.STUDENT)
    course.students.add(*students)
    return {"course": course.pk, "setup_s": round(time.perf_counter() - started, 1)}


def essay_text(rng: random.Random, n: int) -> str:
    sentences = rng.sample(ESSAY_SENTENCES, k=8)
    stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")  # never the same text twice (that would be refused)
    return f"Draft {n} at {stamp}. " + " ".join(sentences[:4]) + "\n\n" + " ".join(sentences[4:])


def run_students(args) -> dict:
    from django.db import connections

    from core.roles import Role
    from education import seed
    from education.models import Assignment, Course, EssayVersion, Grade

    loaded = {} if args.skip_load else load_students(args)
    course = Course.objects.filter(title=seed.demo_course_title()).first()
    if course is None:
        raise SystemExit("No demo course in the database: run --mode students without --skip-load first.")
    students = bench_users("load-student-", args.clients, Role.STUDENT)
    course.students.add(*students)
    assignments = list(Assignment.objects.filter(course=course).values_list("pk", flat=True))
    connections.close_all()

    env = server_env(args, EDUCATION_TUTOR_QUESTIONS_PER_MINUTE="100000", EDUCATION_ESSAYS_PER_MINUTE="100000")
    subprocess.run([str(VENV_BIN / "celery"), "-A", "core", "purge", "-f", "-Q", "default,ml"], cwd=_common.REPO,
                   env=env, check=False, capture_output=True)
    # The workers of the Procfile: `worker` (default and ml, 2 children) and `quick` (default only, 1 child).
    workers = [start([str(VENV_BIN / "celery"), "-A", "core", "worker", "--queues", queues, "--concurrency", children,
                      "--loglevel", "INFO", "--hostname", f"load-bench-{name}@%h"], env,
                     _common.RESULTS_DIR / f"load-students-{name}.log")
               for name, queues, children in (("worker", "default,ml", "2"), ("quick", "default", "1"))]
    server = start_server(args, env)
    recorder = Recorder()
    submitted: list[int] = []  # essay version ids
    try:
        browsers = []
        for user in students:
            browser = Browser(args.port)
            browser.login(user.username)
            browsers.append((user, browser))
        def ask_and_explain(browser: Browser, question: str, recorder: Recorder | None = None):
            """Ask as the course page does, then load the answer page and ask for its explanation as its script does."""
            token = browser.csrf_form(f"/education/tutor/courses/{course.pk}/")
            status, headers, _, seconds = browser.request(
                "POST", f"/education/tutor/courses/{course.pk}/ask/",
                form={"question": question, "csrfmiddlewaretoken": token})
            if recorder:
                recorder.add("tutor_answer", seconds, None if status == 302 else str(status or "connection"))
            found = re.search(r"(/education/tutor/sessions/\d+/)#message-(\d+)",
                              headers.get("Location", "") if headers else "")
            if status != 302 or not found:
                return
            browser.csrf_form(found.group(1))
            started, error, polls = time.perf_counter(), None, 0
            while True:  # the page's script: poll every second until the ml worker wrote it, two minutes at most
                status, _, body, _ = browser.request("GET", f"/education/tutor/messages/{found.group(2)}/explain/",
                                                     headers={"Accept": "application/json"})
                polls += 1
                if status != 200:
                    error = str(status or "connection")
                    break
                if not json.loads(body)["pending"]:
                    break
                if time.perf_counter() - started > 120:
                    error = "timeout"
                    break
                time.sleep(1.0)
            if recorder:
                # Not pending at the first poll: the explanation came with the answer (reused: the same answer
                # to the same question was explained before in the course).
                kind = "tutor_explanation_reused" if polls == 1 and error is None else "tutor_explanation"
                recorder.add(kind, time.perf_counter() - started, error)

        # Questions first (not counted) so each gunicorn worker has loaded the tutor's models: from every
        # student's connection at once (a keep-alive connection stays with one gunicorn process).
        warmers = [threading.Thread(target=ask_and_explain, args=(b, QUESTIONS[0])) for _, b in browsers]
        for thread in warmers:
            thread.start()
        for thread in warmers:
            thread.join()
        print(f"{len(browsers)} students logged in; measuring {args.duration:.0f} s")
        info = _common.machine(threads=args.threads)
        stop_at = time.monotonic() + args.duration
        lock = threading.Lock()

        def student(index: int, user, browser: Browser):
            rng = random.Random(args.seed * 1000 + index)
            n = 0
            while time.monotonic() < stop_at:
                try:
                    student_turn(rng, browser, n := n + 1)
                except FormPageError as exc:  # a form page that did not load: counted, then the next turn
                    recorder.add("form_page", None, str(exc.status or "connection"))
                    time.sleep(args.think)
            connections.close_all()

        def student_turn(rng: random.Random, browser: Browser, n: int):
            ask_and_explain(browser, rng.choice(QUESTIONS), recorder)
            time.sleep(args.think)
            if time.monotonic() >= stop_at:
                return
            assignment = rng.choice(assignments)
            token = browser.csrf_form(f"/education/assignments/{assignment}/")
            status, headers, _, seconds = browser.request(
                "POST", f"/education/assignments/{assignment}/",
                form={"text": essay_text(rng, n), "csrfmiddlewaretoken": token})
            recorder.add("essay_submit", seconds, None if status == 302 else str(status or "connection"))
            match = re.search(r"/essays/(\d+)/", headers.get("Location", "") if headers else "")
            if status == 302 and match:
                version = EssayVersion.objects.filter(essay_id=int(match.group(1))).order_by("-number").first()
                with lock:
                    submitted.append(version.pk)
            time.sleep(args.think)

        threads = [threading.Thread(target=student, args=(i, u, b), daemon=True) for i, (u, b) in enumerate(browsers)]
        server_cpu = sum(group_cpu_seconds(p.pid) for p in (server, *workers))
        with _common.OtherLoad() as load:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        cpu = cpu_report(load.result(), sum(group_cpu_seconds(p.pid) for p in (server, *workers)) - server_cpu)
        print(f"Waiting (up to {args.grade_wait:.0f} s) for {len(submitted)} essay versions to be graded ...")
        ids = list(submitted)
        deadline = time.monotonic() + args.grade_wait
        while time.monotonic() < deadline and EssayVersion.objects.filter(
                pk__in=ids, grading_state__in=["pending", "running"]).exists():
            time.sleep(1)
    finally:
        stop(server)
        for worker in workers:
            stop(worker)
    grades = {g.version_id: g for g in Grade.objects.filter(version_id__in=ids).select_related("version")}
    for pk in ids:
        grade = grades.get(pk)
        if grade is None:
            state = EssayVersion.objects.filter(pk=pk).values_list("grading_state", flat=True).first()
            recorder.add("time_to_grade", None, state or "missing")
        else:
            recorder.add("time_to_grade", (grade.created - grade.version.submitted).total_seconds())
    summary = recorder.summary(args.duration)
    print_summary(f"students: {args.clients} students, {args.duration:.0f} s, real models "
                  f"(time_to_grade: submit to grade row, server clock)", summary)
    print(describe_cpu(cpu) + " (server includes both workers)")
    return {"machine": info, "loaded": loaded, "actions": summary, "cpu": cpu}


def main(argv=None) -> int:
    args = parse_args(argv)
    _common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    prepare_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["CELERY_BROKER_URL"] = args.broker_url
    _common.setup_django()
    from django.core.management import call_command

    print(f"Database {args.database_url.split('@')[-1]}: migrating ...")
    call_command("migrate", verbosity=0)
    result = run_finance(args) if args.mode == "finance" else run_students(args)
    result["args"] = {k: v for k, v in vars(args).items() if k != "database_url"}
    path = _common.write_result(f"load-{args.mode}", result)
    print(f"Saved {path.relative_to(_common.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
