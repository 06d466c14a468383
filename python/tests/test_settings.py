# SPDX-License-Identifier: MIT
"""Settings: the C library's defaults and OMNIQ_* variables, in seconds."""

import pathlib

import pytest

import omniq
from omniq import BackendType, ConfigError, Settings

ALL_VARIABLES = ["OMNIQ_BACKEND", "OMNIQ_DB_URL", "OMNIQ_BASE_DIR", "OMNIQ_DEFAULT_TIMEOUT",
                 "OMNIQ_DEFAULT_MAX_RETRIES", "OMNIQ_LEASE", "OMNIQ_RESULT_TTL",
                 "OMNIQ_SERIALIZER", "OMNIQ_LOG_LEVEL", "OMNIQ_LOG_FORMAT", "OMNIQ_RETRY_BASE",
                 "OMNIQ_RETRY_CAP", "OMNIQ_FSYNC", "OMNIQ_TASK_TTL", "OMNIQ_CRASH_BUDGET"]


@pytest.fixture
def clean_env(monkeypatch):
    for name in ALL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_are_the_c_librarys(clean_env):
    for s in (Settings(), Settings.from_env()):
        assert (s.backend, s.db_url, s.base_dir) == (BackendType.SQLITE, None, "./omniq-data")
        assert (s.default_timeout, s.default_max_retries, s.lease, s.result_ttl) == (
            300, 3, 30, 86400)
        assert (s.serializer, s.log_level, s.log_format) == ("json", "INFO", "text")
        assert (s.retry_base, s.retry_cap, s.fsync, s.clock) == (1, 60, True, None)
        assert (s.task_ttl, s.crash_budget) == (7 * 86400, 2)


def test_from_env_reads_every_variable(clean_env):
    values = {"OMNIQ_BACKEND": "file", "OMNIQ_DB_URL": "sqlite:///x.db",
              "OMNIQ_BASE_DIR": "/tmp/q", "OMNIQ_DEFAULT_TIMEOUT": "2.5",
              "OMNIQ_DEFAULT_MAX_RETRIES": "7", "OMNIQ_LEASE": "12", "OMNIQ_RESULT_TTL": "60",
              "OMNIQ_SERIALIZER": "raw", "OMNIQ_LOG_LEVEL": "debug", "OMNIQ_LOG_FORMAT": "json",
              "OMNIQ_RETRY_BASE": "0.25", "OMNIQ_RETRY_CAP": "9", "OMNIQ_FSYNC": "0",
              "OMNIQ_TASK_TTL": "3600", "OMNIQ_CRASH_BUDGET": "5"}
    assert sorted(values) == sorted(ALL_VARIABLES)
    for name, value in values.items():
        clean_env.setenv(name, value)
    s = Settings.from_env()
    assert (s.backend, s.db_url, s.base_dir) == (BackendType.FILE, "sqlite:///x.db", "/tmp/q")
    assert (s.default_timeout, s.default_max_retries, s.lease, s.result_ttl) == (2.5, 7, 12, 60)
    assert (s.serializer, s.log_level, s.log_format) == ("raw", "DEBUG", "json")
    assert (s.retry_base, s.retry_cap, s.fsync) == (0.25, 9, False)
    assert (s.task_ttl, s.crash_budget) == (3600, 5)


def test_a_bad_variable_is_named(clean_env):
    clean_env.setenv("OMNIQ_LEASE", "soon")
    with pytest.raises(ConfigError) as info:
        Settings.from_env()
    assert "OMNIQ_LEASE" in str(info.value) and "soon" in str(info.value)


@pytest.mark.parametrize("fields, says", [
    ({"serializer": "cloudpickle"}, "JSON"),
    ({"serializer": "msgspec"}, "JSON"),
    ({"backend": "redis"}, "backend"),
    ({"log_level": "LOUD"}, "log_level"),
    ({"lease": -1}, "lease"),
    ({"retry_base": "1s"}, "retry_base"),
    ({"default_max_retries": -2}, "default_max_retries"),
    ({"task_ttl": -1}, "task_ttl"),
    ({"crash_budget": 1.5}, "crash_budget"),
    ({"clock": 5}, "clock"),
])
def test_bad_fields_are_refused(fields, says):
    with pytest.raises(ConfigError) as info:
        Settings(**fields)
    assert says in str(info.value)


def test_unknown_fields_are_refused():
    with pytest.raises(TypeError):
        Settings(serialiser="json")


def test_the_c_library_checks_ranges_at_open(tmp_path):
    with pytest.raises(ConfigError) as info:
        omniq.OmniQ(Settings(base_dir=str(tmp_path), lease=0))
    assert "lease" in str(info.value)


def test_v1_spellings_are_accepted(tmp_path):
    s = Settings(backend=BackendType.FILE, base_dir=pathlib.Path(tmp_path), serializer="json",
                 default_timeout=None, log_level="CRITICAL")
    assert (s.base_dir, s.default_timeout, s.log_level) == (str(tmp_path), 0, "ERROR")
    with omniq.OmniQ(s) as q:
        assert sum(q.count_by_status().values()) == 0
