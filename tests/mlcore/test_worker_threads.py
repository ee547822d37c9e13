"""A prefork worker's children share the cores instead of each starting a thread per core."""

import os
import subprocess
import sys

import pytest
import torch
from celery.signals import celeryd_init, worker_process_init

from mlcore import runtime
from tests.workers import app_broker_env, celery_worker, purge_app_queues, require_redis, wait_for


@pytest.fixture
def threads_restored():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_each_child_takes_the_cores_divided_by_the_concurrency(monkeypatch, threads_restored):
    monkeypatch.delenv("MLCORE_THREADS", raising=False)
    monkeypatch.setattr(runtime, "_DEFAULT_THREADS", 4)
    for concurrency, threads in [(2, 2), (3, 1), (8, 1), (1, 4)]:
        celeryd_init.send(sender="worker@test", instance=None, conf=None, options={"concurrency": concurrency})
        worker_process_init.send(sender=None)
        assert torch.get_num_threads() == threads, concurrency


def test_mlcore_threads_set_by_the_operator_is_kept(monkeypatch, threads_restored):
    monkeypatch.setenv("MLCORE_THREADS", "3")
    monkeypatch.setattr(runtime, "_DEFAULT_THREADS", 4)
    torch.set_num_threads(3)
    celeryd_init.send(sender="worker@test", instance=None, conf=None, options={"concurrency": 2})
    worker_process_init.send(sender=None)
    assert torch.get_num_threads() == 3


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_prefork_worker_splits_the_cores_between_its_children(tmp_path):
    from core.celery import app

    if app.conf.broker_url.startswith("redis"):
        require_redis(app.conf.broker_url)
    purge_app_queues()
    env = {key: value for key, value in os.environ.items() if key != "MLCORE_THREADS"}
    default = int(subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                                 capture_output=True, text=True, check=True).stdout)
    worker_env = {**app_broker_env(), "MLCORE_THREADS": ""}
    with celery_worker(broker_url=worker_env["CELERY_BROKER_URL"], queues="ml", pool="prefork", concurrency=2,
                       extra_env=worker_env, log_dir=tmp_path) as (_, hostname):
        log = next(tmp_path.glob("*.log"))
        wait_for(lambda: log.read_text().count("children share the cores") == 2, timeout=60,
                 what="both children to report their threads")
        lines = [line for line in log.read_text().splitlines() if "children share the cores" in line]
    assert all(f": {max(1, default // 2)} model thread(s) (2 children share the cores)" in line for line in lines)
