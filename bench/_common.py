"""Helpers shared by the benchmark scripts: Django setup, the machine description, load waiting, tables, results.

Only the standard library is imported at module level, so a script can also run parts of itself in
another interpreter (the llama.cpp venv) that has neither Django nor torch.
"""

import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "var" / "bench"
DEFAULT_THREADS = 2


def missing_data(bench: str, folder: Path, names: list[str]) -> bool:
    """Say on stderr which data files a benchmark lacks (it then exits with code 2); True when any is missing."""
    absent = [name for name in names if not (folder / name).is_file()]
    if absent:
        shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
        print(f"{bench}: {shown} missing in {folder}.\n"
              "Pass --data with the folder that holds them (see ../shared/data/README.md).", file=sys.stderr)
    return bool(absent)


def setup_django() -> None:
    """Make `mlcore` importable and configured, as `manage.py` would."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import django

    django.setup()
    quiet_libraries()


def quiet_libraries() -> None:
    """Keep the benchmark output to the figures: no load reports, progress bars or deprecation notes."""
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*quantiz.*")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def wait_for_quiet_machine(max_load: float, max_wait_s: float, say=print) -> tuple[float, float]:
    """Sleep until the machine is quiet (or `max_wait_s` passes); returns (1-minute load, seconds waited).

    Quiet means a 1-minute load average below `max_load`, or other processes using under 5% of the
    cores over a 5 s sample: the load average also counts this script's own recent work (fine-tuning
    just before the speed section keeps it above 1 for a minute or two), which is not a reason to wait.
    Other people's jobs on a 2-core machine cut what we measure several-fold, so figures are only worth
    keeping on a quiet machine.
    """
    started = time.monotonic()
    while True:
        load = load_average()[0]
        if load < max_load:
            break
        share = others_share(5.0)
        if share < 0.05:
            say(f"  load average {load:.2f}, but other processes use {100 * share:.0f}% of the cores: quiet")
            break
        if time.monotonic() - started >= max_wait_s:
            say(f"  load average still {load:.2f} after {max_wait_s:.0f} s; measuring anyway (figures may be low)")
            break
        say(f"  load average {load:.2f} >= {max_load}, other processes use {100 * share:.0f}% of the cores; waiting...")
        time.sleep(10)
    return load, time.monotonic() - started


def _busy_cpu_seconds() -> float:
    """CPU seconds spent not idle by the whole machine since boot (all processes, all cores)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OtherLoad:
    """How much CPU *other* processes used while we measured: the machine's busy time minus ours.

    The load average counts our own threads too, so it cannot tell a clean run from one that shared
    the cores; this can. Use as `with OtherLoad() as other: ...`, then `other.result()`.
    """

    def __enter__(self):
        self.wall0, self.busy0, self.own0 = time.monotonic(), _busy_cpu_seconds(), _own_cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.wall1, self.busy1, self.own1 = time.monotonic(), _busy_cpu_seconds(), _own_cpu_seconds()
        return False

    def result(self) -> dict:
        wall = self.wall1 - self.wall0
        own = self.own1 - self.own0
        others = max(0.0, (self.busy1 - self.busy0) - own)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return {"wall_s": round(wall, 1), "own_cpu_s": round(own, 1), "others_cpu_s": round(others, 1),
                "others_share_of_cores": round(others / (wall * cores), 3) if wall else 0.0}


def describe_other_load(r: dict) -> str:
    return (f"other processes used {100 * r['others_share_of_cores']:.0f}% of the cores while measuring "
            f"({r['others_cpu_s']:.1f} CPU s in {r['wall_s']:.0f} s)")


def others_share(sample_s: float = 3.0) -> float:
    """Share of the cores other processes use over `sample_s` seconds (call while this process is idle)."""
    with OtherLoad() as other:
        time.sleep(sample_s)
    return other.result()["others_share_of_cores"]


def measure_clean(fn, *, tries: int = 3, max_share: float = 0.15, max_wait_s: float = 300.0, say=print):
    """Run `fn()` until other processes used at most `max_share` of the cores during it (at most `tries` times).

    Before a retry, wait (up to `max_wait_s`) until the other processes go quiet. Returns
    (fn's value, the OtherLoad figures of the run kept, attempts). The machine is shared: one
    concurrent test run can cut the measured speed several-fold, so a contaminated run is redone.
    """
    for attempt in range(1, tries + 1):
        with OtherLoad() as other:
            value = fn()
        result = other.result()
        if result["others_share_of_cores"] <= max_share or attempt == tries:
            if result["others_share_of_cores"] > max_share:
                say(f"    (kept a contaminated run: {describe_other_load(result)})")
            return value, result, attempt
        say(f"    (retrying: {describe_other_load(result)})")
        started = time.monotonic()
        while others_share() > 0.1 and time.monotonic() - started < max_wait_s:
            pass
    raise AssertionError("unreachable")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(threads: int) -> dict:
    """What the figures were measured on."""
    info = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": threads,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in load_average()],
    }
    try:
        import torch
        import transformers

        info.update(torch=torch.__version__, transformers=transformers.__version__,
                    gpu=torch.cuda.is_available())
    except ImportError:
        pass
    return info


def describe(info: dict) -> str:
    load = info.get("load_average_at_start", [])
    return (f"{info['date']}  {info['cpu']}, {info['usable_cpus']} cores, {info['memory_gib']} GiB, "
            f"torch threads {info['threads']}, load average {' '.join(f'{x:.2f}' for x in load)}")


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - started, value


def summary(values: list[float]) -> dict:
    return {"best": min(values), "median": statistics.median(values), "runs": [round(v, 4) for v in values]}


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table, aligned for the terminal too."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    sep = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def write_result(name: str, result: dict) -> Path:
    """Save `result` as var/bench/<name>-<timestamp>.json and var/bench/<name>-latest.json."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    text = json.dumps(result, indent=2, default=str)
    path.write_text(text)
    (RESULTS_DIR / f"{name}-latest.json").write_text(text)
    return path


def add_common_arguments(parser, *, default_max_load: float = 0.7) -> None:
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch / llama.cpp threads (default 2)")
    parser.add_argument("--max-load", type=float, default=default_max_load,
                        help="wait until the 1-minute load average is below this before measuring (default 0.7)")
    parser.add_argument("--max-wait", type=float, default=600.0,
                        help="seconds to wait for a quiet machine at most (default 600; 0 = do not wait)")
    parser.add_argument("--tries", type=int, default=3,
                        help="measure a row again (up to this many times) when other processes used more than "
                             "15%% of the cores during it (default 3; 1 = never retry)")
