# SPDX-License-Identifier: MIT
"""The dashboard in a real browser: Debian's headless Chromium, driven
through chromedriver's WebDriver HTTP interface (urllib only). The test
loads the page with the token link `omniq serve` printed, checks the counts
it shows against the store, opens the failed task, reads its traceback,
presses Retry, and sees the task become PENDING in the store (read with
`omniq show`, not from the page). Screenshots go to OMNIQ_TEST_ARTEFACTS.

A missing browser or driver fails the test: CI installs both
(scripts/setup.sh)."""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

from conftest import DEADLINE_S, wait_for

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # Without these Chromium reaches out to the network, which this machine
    # refuses; the dashboard needs nothing from elsewhere.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1500,1000",
]


class WebDriver:
    """The few WebDriver commands the test needs (W3C protocol)."""

    def __init__(self):
        driver = shutil.which("chromedriver")
        chromium = shutil.which("chromium")
        assert driver and chromium, "chromium and chromium-driver are missing (scripts/setup.sh)"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.profile = tempfile.mkdtemp(prefix="omniq-chromium-")
        self.log = open(os.path.join(self.profile, "chromedriver.log"), "w")
        self.proc = subprocess.Popen([driver, f"--port={self.port}"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for(self.ready, "chromedriver to answer")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium,
                                   "args": CHROMIUM_FLAGS + [f"--user-data-dir={self.profile}"]},
        }}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def ready(self):
        try:
            return self.call("GET", "/status", base="")["ready"]
        except (urllib.error.URLError, ConnectionError):
            return False

    def call(self, method, path, body=None, base=None):
        prefix = "" if base is not None or not hasattr(self, "session") else f"/session/{self.session}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{prefix}{path}", data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=DEADLINE_S) as r:
                return json.load(r)["value"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"WebDriver {method} {path}: {e.read().decode()}") from None

    def go(self, url):
        self.call("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        found = self.call("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def click(self, css):
        self.call("POST", f"/element/{self.find(css)}/click", {})

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e && e.textContent;",
                       css)

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.call("GET", "/screenshot")))

    def quit(self):
        try:
            if hasattr(self, "session"):
                self.call("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=DEADLINE_S)
            self.log.close()
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browser():
    wd = WebDriver()
    yield wd
    wd.quit()


def test_the_dashboard_shows_the_store_and_retries_a_failed_task(store, serve, browser):
    # Sampled every second, so that the runs below reach the chart.
    s = serve("--sample", "1s")
    lib = store.handlers
    ok = [store.enqueue("--", "true") for _ in range(3)]
    failed = store.enqueue("--queue", "emails", "--retries", "1", "--func",
                           f"{lib}:omniq_test_fail_traceback")
    cmd_failed = store.enqueue("--queue", "emails", "--retries", "1", "--", "sh", "-c",
                               "echo 'disk full' >&2; exit 4")
    store.work(ok + [failed, cmd_failed], ["default", "emails"])
    for _ in range(2):
        store.enqueue("--queue", "reports", "--delay", "1h", "--", "true")
    truth = store.truth()
    assert truth["emails"]["counts"]["FAILED"] == 2 and store.status(failed) == "FAILED"

    def sampled_after_the_workload():
        samples = s.get_json("api/throughput")[1]["samples"]
        return samples and samples[-1][1:3] == [3, 2] and samples[-1][5] == 2

    wait_for(sampled_after_the_workload, "a sample taken after the workload")
    browser.go(s.url + "#token=" + s.token)
    wait_for(lambda: browser.js("return document.body.dataset.loaded === '1'"), "the page to load")

    # The counts shown are the store's.
    for queue, t in truth.items():
        for status, n in t["counts"].items():
            shown = browser.text(f'#queues tr[data-queue="{queue}"] td[data-status="{status}"]')
            assert shown == str(n), (queue, status, shown)
    assert browser.text('#queues tfoot td[data-status="SUCCESS"]') == "3"
    # The token came from the link, and left the address bar.
    assert browser.text("#mode") == "actions on"
    assert "#token" not in browser.js("return location.href")
    # The chart drew the runs: a line per series, and the succeeded one
    # rises above the zero line (the lowest grid line) where the runs were.
    for series in ("succeeded", "retried", "failed"):
        assert browser.js(f"return document.querySelectorAll('#chart polyline.{series}').length") == 1
    zero = browser.js("return Math.max(...[...document.querySelectorAll('#chart line.grid')]"
                      ".map(l => +l.getAttribute('y1')))")
    heights = browser.js("return document.querySelector('#chart polyline.succeeded')"
                         ".getAttribute('points').split(' ').map(p => +p.split(',')[1])")
    assert min(heights) < zero, (zero, heights)

    # The failing tasks list, newest first, with error type and message.
    rows = browser.js("return [...document.querySelectorAll('#tasks tbody tr')]"
                      ".map(r => r.dataset.id)")
    assert rows == [cmd_failed, failed]
    row = browser.text(f'#tasks tr[data-id="{failed}"]')
    assert "ValueError: invoice 42 has no customer" in row

    # Open the failed task: its error and traceback.
    browser.click(f'#tasks tr[data-id="{failed}"]')
    wait_for(lambda: browser.text("#detail-id") == failed, "the task's detail")
    assert browser.text("#detail-status") == "FAILED"
    assert browser.text("#detail-error") == "ValueError: invoice 42 has no customer"
    assert 'File "billing.py", line 12, in charge' in browser.text("#detail-traceback")
    assert "hidden" in browser.text("#detail-fields")  # no args without --show-args
    artefacts = os.environ.get("OMNIQ_TEST_ARTEFACTS", str(store.dir))
    browser.js("window.scrollTo(0, 0)")
    browser.screenshot(os.path.join(artefacts, "dashboard.png"))

    # Retry: the store has it PENDING again, with a fresh budget.
    assert browser.js("return document.getElementById('act-retry').disabled") is False
    browser.click("#act-retry")
    wait_for(lambda: store.status(failed) == "PENDING", "the task to be PENDING in the store")
    assert store.show(failed)["attempts"] == 0
    wait_for(lambda: browser.text("#detail-status") == "PENDING", "the page to show it PENDING")
    assert browser.text("#notice").startswith("retry " + failed)
    browser.js("window.scrollTo(0, 0)")
    browser.screenshot(os.path.join(artefacts, "dashboard-retried.png"))
