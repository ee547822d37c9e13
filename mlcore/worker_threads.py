"""Share the cores between the children of a prefork Celery worker.

Each child runs its own models, and torch, ONNX Runtime and llama.cpp each start as many threads as there are
cores. Two children decoding at once on two cores then run four threads that wait on each other at every
step: an explanation that takes 2 s alone took 10-25 s in the students load run (docs/benchmarks.md). A child
now takes the cores divided by the worker's concurrency (at least one), unless MLCORE_THREADS says otherwise.
"""

import logging
import os

from celery.signals import celeryd_init, worker_process_init

log = logging.getLogger(__name__)

_worker: dict = {"concurrency": 1}


@celeryd_init.connect
def remember_concurrency(sender=None, instance=None, conf=None, options=None, **kwargs):
    """In the worker's main process, before its children fork: how many of them will run side by side."""
    concurrency = (options or {}).get("concurrency") or getattr(conf, "worker_concurrency", None) or os.cpu_count()
    _worker["concurrency"] = max(int(concurrency or 1), 1)


@worker_process_init.connect
def share_cores(**kwargs):
    from mlcore import runtime  # torch is imported where models run, not by every process that loads the apps

    threads = runtime.threads_share(processes=_worker["concurrency"])
    log.info("worker child %s: %d model thread(s) (%d children share the cores)", os.getpid(), threads,
             _worker["concurrency"])
