"""Production settings: the deploy check passes, and unsafe defaults are refused."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage(*args, env_extra, tmp_path):
    # An install of its own: settings only, on the default SQLite file under tmp_path.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_") and k != "DATABASE_URL"}
    env.update({"PARLANCE_VAR_DIR": str(tmp_path), **env_extra})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


PRODUCTION_ENV = {
    "DJANGO_PRODUCTION": "true",
    "DJANGO_SECRET_KEY": "k3y-for-the-deploy-check-only-" + "x7Qp" * 12,
    "DJANGO_ALLOWED_HOSTS": "parlance.example.com",
}


def test_deploy_check_passes_with_production_settings(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env_extra=PRODUCTION_ENV, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_requires_a_secret_key(tmp_path):
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": ""}
    result = manage("check", env_extra=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_refuses_demo_accounts(tmp_path):
    result = manage("demo_setup", env_extra=PRODUCTION_ENV, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "never created on a production install" in result.stderr


def test_a_fresh_install_makes_its_own_secret_key(tmp_path):
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    env.update(PARLANCE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="core.settings")
    run = lambda: subprocess.run(  # noqa: E731
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    first = run()
    assert len(first) >= 50
    assert run() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_malformed_boolean_is_a_clear_error(tmp_path, value):
    result = manage("check", env_extra={"DJANGO_DEBUG": value}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert f"DJANGO_DEBUG must be true or false, not '{value}'" in result.stderr


def test_a_redis_cache_url_shares_the_cache_between_processes(tmp_path):
    from tests.workers import require_redis

    url = "redis://127.0.0.1:6379/11"
    require_redis(url)
    script = ("from django.core.cache import caches; caches['default'].set('parlance-test', 'shared', 30); "
              "print(type(caches['default']).__name__)")
    wrote = manage("shell", "--no-imports", "-c", script, env_extra={"DJANGO_CACHE_URL": url}, tmp_path=tmp_path)
    assert wrote.returncode == 0, wrote.stderr
    assert wrote.stdout.strip() == "RedisCache"
    # Another process (another web worker) sees what the first one counted.
    read = manage("shell", "--no-imports", "-c",
                  "from django.core.cache import cache; print(cache.get('parlance-test'))",
                  env_extra={"DJANGO_CACHE_URL": url}, tmp_path=tmp_path / "other")
    assert read.stdout.strip() == "shared", read.stderr


def test_a_cache_url_that_is_not_redis_is_refused(tmp_path):
    result = manage("check", env_extra={"DJANGO_CACHE_URL": "memcached://x"}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "DJANGO_CACHE_URL must be a redis:// URL" in result.stderr


@pytest.mark.django_db
def test_postgresql_connections_run_without_jit():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (CI runs on it)")
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == ("off",)
