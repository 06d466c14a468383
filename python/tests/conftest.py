# SPDX-License-Identifier: MIT
"""Fixtures: a store per test on each embedded backend, a manual clock, and
the C peer program.

Every test that takes `backend` (directly or through `q`/`settings`) runs
once per backend; `--backend sqlite` or `--backend file` picks one (the
build runs them as two ctest entries). Tests move the manual clock instead
of waiting for an eta or a backoff; the few that measure real time (the
ones the specification gives a bound for) use real_settings.
"""

import datetime
import os
import threading

import pytest

import omniq
import omniq_test_tasks

BACKENDS = ("sqlite", "file")
EPOCH = 1_800_000_000.0  # 2027-01-15: a fixed "now" for the manual clock


def pytest_addoption(parser):
    parser.addoption("--backend", choices=BACKENDS, action="append",
                     help="run the backend tests on this backend only (default: both)")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", metafunc.config.getoption("backend") or BACKENDS)


class ManualClock:
    """A clock tests move by hand; Settings(clock=...) reads it."""

    def __init__(self, now=EPOCH):
        self._now = now
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            return self._now

    def advance(self, seconds):
        with self._lock:
            self._now += seconds


def at(seconds):
    """An aware UTC datetime from seconds since the epoch (the clock's unit)."""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def ids(tasks):
    """The ids of listed tasks, in order."""
    return [t.id for t in tasks]


@pytest.fixture
def clock():
    return ManualClock()


def make_settings(backend, base_dir, **fields):
    fields.setdefault("log_level", "ERROR")
    fields.setdefault("fsync", False)  # durability is the C suites' job; keep these fast
    return omniq.Settings(backend=backend, base_dir=str(base_dir), **fields)


@pytest.fixture
def settings(backend, tmp_path, clock):
    """A fresh store on the manual clock; retries 1 s apart (by that clock)."""
    return make_settings(backend, tmp_path / "store", clock=clock, retry_base=1, retry_cap=1)


@pytest.fixture
def real_settings(backend, tmp_path):
    """A fresh store on the real clock."""
    return make_settings(backend, tmp_path / "store")


@pytest.fixture
def q(settings):
    with omniq.OmniQ(settings) as handle:
        yield handle


@pytest.fixture(autouse=True)
def fresh_task_state():
    omniq_test_tasks.reset()
    yield
    omniq_test_tasks.release_all()


@pytest.fixture
def peer():
    """The C peer program (python/tests/c_peer.c), built by CMake."""
    path = os.environ.get("OMNIQ_TEST_PEER")
    if not path:
        pytest.skip("OMNIQ_TEST_PEER is not set (run through ctest, which builds c_peer)")
    return path
