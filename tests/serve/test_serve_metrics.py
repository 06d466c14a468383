# SPDX-License-Identifier: MIT
"""/metrics: parsed by Prometheus's own parser (`promtool check metrics`,
from Debian's prometheus package), and every sample compared with the
store's true numbers after a known workload. The truth comes from the
library by another road than the server's (serve_peer: tasks counted by
listing every one, settings and totals from omniq_queue_info) and from what
the workload must have done."""

import re
import shutil
import signal
import subprocess
import time

from conftest import DEADLINE_S, wait_for

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def promtool_check(text):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/setup.sh installs Debian's prometheus package"
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=DEADLINE_S)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", p.stdout + p.stderr


def samples(text):
    """{(name, frozenset(labels)): value} for every sample line."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, line
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(s, name, **labels):
    return s[(name, frozenset(labels.items()))]


def workload(store):
    """default: 3 succeed. emails: 2 fail twice each (2 retried, 2 failed),
    1 waits an hour. reports: 2 due, never run, paused, limited to 5/min.
    crashy: 1 run lost with its worker (SIGKILL), then run again and
    succeeded. Returns the time just before the due reports were enqueued."""
    ok = [store.enqueue("--", "true") for _ in range(3)]
    bad = [store.enqueue("--queue", "emails", "--retries", "2", "--", "sh", "-c", "exit 3")
           for _ in range(2)]
    store.enqueue("--queue", "emails", "--delay", "1h", "--", "true")
    store.work(ok + bad, ["default", "emails"])

    # A run lost with its worker: the command sleeps the first time only.
    crash = store.enqueue("--queue", "crashy", "--", "sh", "-c",
                          "test -e ran || { touch ran; exec sleep 600; }")
    lease = {"OMNIQ_LEASE": "0.5"}
    w = store.start("worker", "--queues", "crashy", env=lease, log="crash.log")
    wait_for(lambda: (store.dir / "ran").exists() and store.status(crash) == "RUNNING",
             "the crashy task to run")
    w.send_signal(signal.SIGKILL)
    w.wait(timeout=DEADLINE_S)

    def recovered():  # a burst worker claims it once its lease has run out
        store.run("worker", "--burst", "--queues", "crashy", env=lease, ok=(0, 1))
        return store.status(crash) == "SUCCESS"

    wait_for(recovered, "the lost run to be recovered")

    before_due = time.time()
    for _ in range(2):
        store.enqueue("--queue", "reports", "--", "true")
    store.set_rate("reports", 5, 60000)
    return before_due


def test_metrics_pass_promtool_and_match_the_store(store, serve):
    before_due = workload(store)
    s = serve()
    assert s.post("api/queues/reports/pause", token=s.token)[0] == 200
    status, headers, body = s.get("metrics")
    scraped_at = time.time()
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    promtool_check(text)
    m = samples(text)
    truth = store.truth()
    assert set(truth) == {"default", "emails", "reports", "crashy"}

    expected_runs = {"default": (3, 0, 0, 0), "emails": (0, 2, 2, 0), "reports": (0, 0, 0, 0),
                     "crashy": (1, 0, 0, 1)}
    for q, t in truth.items():
        for st, n in t["counts"].items():
            assert value(m, "omniq_tasks", queue=q, status=st) == n, (q, st)
        for kind, n in t["runs"].items():
            assert value(m, "omniq_runs_total", queue=q, outcome=kind) == n, (q, kind)
        assert tuple(t["runs"][k] for k in ("succeeded", "failed", "retried", "lost")) == \
            expected_runs[q], q
        assert value(m, "omniq_queue_paused", queue=q) == (1 if t["paused"] else 0)
        assert value(m, "omniq_queue_rate_limit", queue=q) == t["rate_limit"]
        assert value(m, "omniq_queue_rate_period_seconds", queue=q) == \
            (t["rate_period_ms"] / 1000 if t["rate_limit"] else 0)

    assert truth["default"]["counts"]["SUCCESS"] == 3
    assert truth["emails"]["counts"] == {"PENDING": 1, "RUNNING": 0, "SUCCESS": 0, "FAILED": 2,
                                         "CANCELLED": 0}
    assert truth["reports"]["counts"]["PENDING"] == 2 and truth["reports"]["paused"] is True
    assert truth["reports"]["rate_limit"] == 5 and truth["reports"]["rate_period_ms"] == 60000
    # Due since they were enqueued: no older than that, and counted.
    age = value(m, "omniq_queue_oldest_due_age_seconds", queue="reports")
    assert 0 < age <= scraped_at - before_due + 0.001
    for q in ("default", "emails", "crashy"):  # nothing due there
        assert value(m, "omniq_queue_oldest_due_age_seconds", queue=q) == 0
    assert value(m, "omniq_stats_duration_seconds") >= 0
    # Without a pool in the process there is no duration histogram.
    assert "omniq_run_duration_seconds" not in text


def test_a_worker_in_the_server_adds_run_duration_histograms(store, serve):
    s = serve("--worker", "2", "--queues", "default,emails")
    ok = [store.enqueue("--", "true") for _ in range(3)]
    bad = store.enqueue("--queue", "emails", "--retries", "1", "--", "false")
    for task_id in ok + [bad]:
        store.run("result", "--wait", "1m", task_id, ok=(0, 1))
    text = s.get("metrics")[2].decode()
    promtool_check(text)
    m = samples(text)
    for outcome, n in (("succeeded", 3), ("failed", 1)):
        assert value(m, "omniq_run_duration_seconds_count", outcome=outcome) == n
        assert value(m, "omniq_run_duration_seconds_bucket", outcome=outcome, le="+Inf") == n
        buckets = sorted((float(dict(k[1])["le"]), v) for k, v in m.items()
                         if k[0] == "omniq_run_duration_seconds_bucket"
                         and dict(k[1])["outcome"] == outcome)
        counts = [v for _, v in buckets]
        assert counts == sorted(counts)  # cumulative
        assert value(m, "omniq_run_duration_seconds_sum", outcome=outcome) > 0
    assert store.truth()["default"]["runs"]["succeeded"] == 3
    assert value(m, "omniq_runs_total", queue="default", outcome="succeeded") == 3



def test_a_scrape_counts_what_was_stored_just_before_it(store, serve):
    # The page's counts are sampled every 5 minutes here, so only the
    # scrape's own count can see these tasks.
    s = serve("--sample", "5m")
    assert s.get_json("api/overview")[1]["totals"]["counts"]["PENDING"] == 0
    for _ in range(4):
        store.enqueue("--delay", "1h", "--", "true")
    assert s.get_json("api/overview")[1]["totals"]["counts"]["PENDING"] == 0  # not sampled yet
    m = samples(s.get("metrics")[2].decode())
    assert value(m, "omniq_tasks", queue="default", status="PENDING") == 4
    # The scrape's count is the page's latest sample too.
    assert s.get_json("api/overview")[1]["totals"]["counts"]["PENDING"] == 4
