# SPDX-License-Identifier: MIT
"""What the `omniq serve` tests share: a fresh store per test, the omniq
command and the serve_peer program run on it, a server started on a free
port, and HTTP through urllib (no third-party package).

ctest passes the programs' paths in the environment: OMNIQ_BIN (the omniq
command), SERVE_PEER (tests/serve/serve_peer.c), OMNIQ_TEST_HANDLERS_LIB
(tests/handlers_lib.c built), and OMNIQ_TEST_ARTEFACTS (a directory for the
browser test's screenshot). `--backend sqlite|file` picks the store.

Nothing here sleeps to wait for something: a wait is a blocking call
(`omniq result --wait`), or a bounded poll of a condition (wait_for).
"""

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

DEADLINE_S = 60  # far beyond what any condition needs; a real hang fails


def pytest_addoption(parser):
    parser.addoption("--backend", choices=("sqlite", "file"), default="sqlite")


def tool(name):
    path = os.environ.get(name)
    assert path and os.path.exists(path), f"{name} must name a built program (ctest sets it)"
    return path


def wait_for(cond, what, deadline_s=DEADLINE_S):
    """Polls cond() until it returns something true; fails naming what."""
    end = time.monotonic() + deadline_s
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def http(method, url, headers=None, body=None):
    """(status, headers, body bytes), whatever the status."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def get_json(url, **kw):
    status, headers, body = http("GET", url, **kw)
    return status, json.loads(body)


class Store:
    """A fresh store in tmp_path, and the omniq command run on it."""

    def __init__(self, tmp_path, backend):
        self.dir = tmp_path
        self.backend = backend
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("OMNIQ_") or k in ("OMNIQ_BIN", "OMNIQ_TEST_HANDLERS_LIB")}
        self.env.update(OMNIQ_BACKEND=backend, OMNIQ_BASE_DIR=str(tmp_path / "data"),
                        OMNIQ_RETRY_BASE="0.01", OMNIQ_RETRY_CAP="0.05", OMNIQ_FSYNC="0")
        self.omniq_bin = tool("OMNIQ_BIN")
        self.handlers = tool("OMNIQ_TEST_HANDLERS_LIB")

    def run(self, *args, ok=(0,), env=None):
        p = subprocess.run([self.omniq_bin, *args], cwd=self.dir, env={**self.env, **(env or {})},
                           capture_output=True, text=True, timeout=DEADLINE_S)
        assert p.returncode in ok, f"omniq {' '.join(args)}: exit {p.returncode}: {p.stderr}"
        return p

    def enqueue(self, *args):
        return self.run("enqueue", *args).stdout.strip()

    def show(self, task_id):
        return json.loads(self.run("show", "--json", task_id).stdout)

    def status(self, task_id):
        return self.show(task_id)["status"]

    def truth(self):
        p = subprocess.run([tool("SERVE_PEER"), "truth"], cwd=self.dir, env=self.env,
                           capture_output=True, text=True, timeout=DEADLINE_S)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def set_rate(self, queue, limit, period_ms):
        subprocess.run([tool("SERVE_PEER"), "set-rate", queue, str(limit), str(period_ms)],
                       cwd=self.dir, env=self.env, check=True, timeout=DEADLINE_S)

    def start(self, *args, env=None, log="bg.log"):
        out = open(self.dir / log, "w")
        return subprocess.Popen([self.omniq_bin, *args], cwd=self.dir, stdout=out,
                                stderr=subprocess.STDOUT, env={**self.env, **(env or {})})

    def work(self, ids, queues):
        """Runs a worker (which may load the test handler library) until
        every task of ids has a result, then stops it."""
        w = self.start("worker", "--queues", ",".join(queues), "-c", "2", "--load", self.handlers,
                       log="worker.log")
        try:
            for task_id in ids:
                self.run("result", "--wait", "1m", task_id, ok=(0, 1))
        finally:
            w.send_signal(signal.SIGTERM)
            assert w.wait(timeout=DEADLINE_S) == 0, (self.dir / "worker.log").read_text()


class Server:
    """`omniq serve` on a free loopback port; stop() checks it exits 0."""

    def __init__(self, store, *args, env=None):
        self.store = store
        self.err = open(store.dir / "serve.err", "w")
        self.proc = subprocess.Popen(
            [store.omniq_bin, "serve", "--listen", "127.0.0.1:0", *args], cwd=store.dir,
            stdout=subprocess.PIPE, stderr=self.err, text=True,
            env={**store.env, **(env or {})})
        self.url = self.token = None
        for line in self.proc.stdout:  # the two announcement lines; EOF if it failed
            m = re.search(r"listening on (http://\S+/)", line)
            if m:
                self.url = m.group(1)
            m = re.search(r"action token: (\w+)", line)
            if m:
                self.token = m.group(1)
            if re.search(r"token|read-only", line):
                break
        assert self.url, "omniq serve did not start: " + (store.dir / "serve.err").read_text()

    def get(self, path, **kw):
        return http("GET", self.url + path.lstrip("/"), **kw)

    def get_json(self, path, **kw):
        return get_json(self.url + path.lstrip("/"), **kw)

    def post(self, path, token=None, headers=None, body=None):
        h = dict(headers or {})
        if token is not None:
            h["X-OmniQ-Token"] = token
        return http("POST", self.url + path.lstrip("/"), headers=h, body=body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=DEADLINE_S)
        self.proc.stdout.close()
        self.err.close()
        assert code == 0, "omniq serve: exit %d: %s" % (code, (self.store.dir / "serve.err").read_text())


@pytest.fixture
def store(tmp_path, request):
    return Store(tmp_path, request.config.getoption("backend"))


@pytest.fixture
def serve(store):
    """serve(*args, env=...) starts a server; each is stopped (and its exit
    status checked) at the end of the test."""
    started = []

    def start(*args, env=None):
        s = Server(store, *args, env=env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
