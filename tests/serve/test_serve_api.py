# SPDX-License-Identifier: MIT
"""omniq serve's JSON API and its security model: actions need the token
and same-site requests, every input is checked, task arguments stay hidden,
and every response carries the security headers."""

import json

import pytest

from conftest import get_json, http

TOKEN = "test-token-0123456789abcdef"
SECRET = "s3cret-password-in-args"


@pytest.fixture
def seeded(store):
    """default: 1 SUCCESS; emails: 1 FAILED (a traceback) and 1 PENDING
    holding a secret in its args; reports: 1 CANCELLED."""
    lib = store.handlers
    ok = store.enqueue("--", "true")
    failed = store.enqueue("--queue", "emails", "--retries", "1", "--func",
                           f"{lib}:omniq_test_fail_traceback")
    store.work([ok, failed], ["default", "emails"])
    pending = store.enqueue("--queue", "emails", "--delay", "1h", "--func", "billing.charge",
                            "--args", json.dumps([SECRET]), "--kwargs", json.dumps({"pw": SECRET}))
    cancelled = store.enqueue("--queue", "reports", "--delay", "1h", "--", "echo", SECRET)
    store.run("cancel", cancelled)
    return {"ok": ok, "failed": failed, "pending": pending, "cancelled": cancelled}


ACTIONS = [("tasks", "failed", "retry"), ("tasks", "pending", "cancel"),
           ("tasks", "cancelled", "delete"), ("queues", "emails", "pause")]


def action_path(seeded, kind, what, verb):
    target = seeded[what] if kind == "tasks" else what
    return f"api/{kind}/{target}/{verb}"


def snapshot(store, seeded):
    """Everything an action could change, read through the library."""
    truth = store.truth()
    return ({k: store.status(v) for k, v in seeded.items()},
            {q: v["paused"] for q, v in truth.items()})


def test_every_action_without_the_token_is_403_and_changes_nothing(store, seeded, serve):
    s = serve(env={"OMNIQ_DASHBOARD_TOKEN": TOKEN})
    before = snapshot(store, seeded)
    for kind, what, verb in ACTIONS + [("queues", "emails", "resume")]:
        for token in (None, "", "wrong-token-0123456789", TOKEN[:-1], TOKEN + "x"):
            status, headers, body = s.post(action_path(seeded, kind, what, verb), token=token)
            assert status == 403, (verb, token, body)
            assert "token" in json.loads(body)["error"]
    assert snapshot(store, seeded) == before


def test_a_cross_site_post_is_refused_even_with_the_token(store, seeded, serve):
    s = serve(env={"OMNIQ_DASHBOARD_TOKEN": TOKEN})
    before = snapshot(store, seeded)
    host = s.url[len("http://"):-1]
    cross = [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
             {"Origin": "http://evil.example"}, {"Origin": "null"},
             {"Origin": "https://" + host}, {"Origin": "http://" + host + ".evil.example"}]
    for kind, what, verb in ACTIONS:
        for headers in cross:
            status, _, body = s.post(action_path(seeded, kind, what, verb), token=TOKEN,
                                     headers=headers)
            assert status == 403, (verb, headers, body)
            assert "cross-" in json.loads(body)["error"]
    assert snapshot(store, seeded) == before
    # The page's own requests are same-origin, and pass.
    status, _, body = s.post(action_path(seeded, "tasks", "failed", "retry"), token=TOKEN,
                             headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://" + host})
    assert status == 200, body
    assert store.status(seeded["failed"]) == "PENDING"


def test_a_read_only_server_refuses_actions_whatever_the_token(store, seeded, serve):
    s = serve("--read-only", env={"OMNIQ_DASHBOARD_TOKEN": TOKEN})
    before = snapshot(store, seeded)
    for kind, what, verb in ACTIONS:
        status, _, body = s.post(action_path(seeded, kind, what, verb), token=TOKEN)
        assert status == 403 and "read-only" in json.loads(body)["error"]
    assert snapshot(store, seeded) == before
    assert s.get_json("api/overview")[1]["read_only"] is True


def test_actions_with_the_token_change_the_store(store, seeded, serve):
    s = serve()  # a generated token, printed at start
    assert s.token and len(s.token) == 64
    assert s.post(f"api/tasks/{seeded['failed']}/retry", token=s.token)[0] == 200
    assert store.status(seeded["failed"]) == "PENDING"
    assert store.show(seeded["failed"])["attempts"] == 0
    assert s.post(f"api/tasks/{seeded['pending']}/cancel", token=s.token)[0] == 200
    assert store.status(seeded["pending"]) == "CANCELLED"
    assert s.post(f"api/tasks/{seeded['cancelled']}/delete", token=s.token)[0] == 200
    store.run("show", seeded["cancelled"], ok=(3,))
    assert s.post("api/queues/reports/pause", token=s.token)[0] == 200
    assert store.truth()["reports"]["paused"] is True
    assert s.post("api/queues/reports/resume", token=s.token)[0] == 200
    assert store.truth()["reports"]["paused"] is False
    # The state machine still decides: a PENDING task cannot be deleted.
    status, _, body = s.post(f"api/tasks/{seeded['failed']}/delete", token=s.token)
    assert status == 409 and store.status(seeded["failed"]) == "PENDING", body


def test_an_action_with_a_body_or_the_wrong_method_is_refused(store, seeded, serve):
    s = serve(env={"OMNIQ_DASHBOARD_TOKEN": TOKEN})
    path = f"api/tasks/{seeded['failed']}/retry"
    status, _, _ = s.post(path, token=TOKEN, body=b"x" * 10,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413
    status, headers, _ = s.get(path)
    assert status == 405 and headers["Allow"] == "POST"
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        status, headers, _ = http(method, s.url + path, headers={"X-OmniQ-Token": TOKEN})
        assert status == 405, method
        assert "Access-Control-Allow-Origin" not in headers
    status, headers, _ = s.post("api/overview", token=TOKEN)
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert store.status(seeded["failed"]) == "FAILED"


BAD_INPUTS = [
    ("api/tasks/not-a-task", "is not a task id"),
    ("api/tasks/01a22910-d797-7105-8002-0ef9f5b9a04Z", "is not a task id"),
    ("api/tasks?status=DONE", "status: 'DONE'"),
    ("api/tasks?status=FAILED,", "status:"),
    ("api/tasks?status=", "needs a value"),
    ("api/tasks?status=FAILED&status=PENDING", "given twice"),
    ("api/tasks?queue=no%20spaces", "queue:"),
    ("api/tasks?queue=" + "q" * 64, "queue:"),
    ("api/tasks?func=%0a", "func:"),
    ("api/tasks?func=%ff%fe", "func:"),
    ("api/tasks?limit=0", "limit:"),
    ("api/tasks?limit=1001", "limit:"),
    ("api/tasks?limit=ten", "limit:"),
    ("api/tasks?limit=-5", "limit:"),
    ("api/tasks?cursor=abc", "cursor"),
    ("api/tasks?cursor=" + "c" * 200, "cursor:"),
    ("api/tasks?order=sideways", "order:"),
    ("api/tasks?created_from=yesterday", "created_from:"),
    ("api/tasks?finished_to=2026-02-30T00:00:00Z", "finished_to:"),
    ("api/tasks?created_from=2030-01-01T00:00:00Z&created_to=2020-01-01T00:00:00Z", "range"),
    ("api/tasks?frobnicate=1", "unknown parameter 'frobnicate'"),
    ("api/overview?x=1", "unknown parameter 'x'"),
    ("api/throughput?since=0", "unknown parameter 'since'"),
]


def test_every_bad_input_is_a_400_that_says_what_is_wrong(store, seeded, serve):
    s = serve(env={"OMNIQ_DASHBOARD_TOKEN": TOKEN})
    for path, says in BAD_INPUTS:
        status, headers, body = s.get(path)
        assert status == 400, (path, status, body)
        assert headers["Content-Type"] == "application/json"
        assert says in json.loads(body)["error"], (path, body)
    for path in ("api/tasks/nope/retry", "api/queues/bad%20name/pause",
                 f"api/tasks/{seeded['failed']}/retry?now=1"):
        status, _, body = s.post(path, token=TOKEN)
        assert status == 400, (path, body)
    assert store.status(seeded["failed"]) == "FAILED"
    status, _, body = s.get("api/tasks/01a22910-d797-7105-8002-0ef9f5b9a040")
    assert status == 404 and "no task" in json.loads(body)["error"]
    assert s.get("no/such/page")[0] == 404


def test_task_arguments_and_results_are_never_shown_without_show_args(store, seeded, serve):
    s = serve()
    pages = [s.get("api/overview"), s.get("api/throughput"), s.get("metrics"),
             s.get("api/tasks"), s.get("api/tasks?status=PENDING,CANCELLED&order=newest")]
    pages += [s.get(f"api/tasks/{i}") for i in seeded.values()]
    for status, _, body in pages:
        assert status == 200
        assert SECRET.encode() not in body
    detail = json.loads(s.get(f"api/tasks/{seeded['pending']}")[2])
    assert "args" not in detail["task"] and detail["args_shown"] is False
    ok = json.loads(s.get(f"api/tasks/{seeded['ok']}")[2])
    assert "value" not in ok["result"]


def test_show_args_shows_them(store, seeded, serve):
    s = serve("--show-args")
    detail = json.loads(s.get(f"api/tasks/{seeded['pending']}")[2])
    assert detail["task"]["args"] == [SECRET] and detail["task"]["kwargs"] == {"pw": SECRET}
    ok = json.loads(s.get(f"api/tasks/{seeded['ok']}")[2])
    assert ok["result"]["value"]["exit_code"] == 0


def test_a_failed_task_shows_its_error_and_traceback(store, seeded, serve):
    s = serve()
    status, page = s.get_json("api/tasks?status=FAILED")
    assert status == 200 and [t["id"] for t in page["tasks"]] == [seeded["failed"]]
    err = page["tasks"][0]["last_error"]
    assert err["error_type"] == "ValueError" and err["message"] == "invoice 42 has no customer"
    status, d = s.get_json(f"api/tasks/{seeded['failed']}")
    assert d["task"]["status"] == "FAILED" and d["result"]["status"] == "FAILED"
    assert 'File "billing.py", line 12, in charge' in d["task"]["last_error"]["traceback"]
    assert set(d["task"]["last_error"]) == {"error_type", "message", "timestamp", "traceback",
                                            "retry_count", "is_retryable"}


def test_task_pages_follow_the_cursor_like_the_library(store, serve):
    ids = [store.enqueue("--delay", "1h", "--", "true") for _ in range(23)]
    s = serve()
    for order, expect in (("oldest", ids), ("newest", ids[::-1])):
        seen, cursor = [], None
        while True:
            q = f"api/tasks?status=PENDING&order={order}&limit=10"
            status, page = s.get_json(q + (f"&cursor={cursor}" if cursor else ""))
            assert status == 200 and len(page["tasks"]) <= 10
            seen += [t["id"] for t in page["tasks"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expect


def test_the_overview_counts_every_queue(store, seeded, serve):
    s = serve()
    status, ov = s.get_json("api/overview")
    assert status == 200
    truth = store.truth()
    assert {q["name"]: q["counts"] for q in ov["queues"]} == {n: v["counts"] for n, v in truth.items()}
    assert ov["totals"]["counts"]["FAILED"] == 1 and ov["totals"]["runs"]["succeeded"] == 1


def test_every_response_carries_the_security_headers_and_no_cors(store, serve):
    s = serve()
    for path in ("", "app.js", "style.css", "api/overview", "api/tasks", "metrics",
                 "api/tasks/zzz", "missing"):
        status, headers, _ = s.get(path, headers={"Origin": "http://evil.example"})
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert not any(h.lower().startswith("access-control-") for h in headers), path
    page = s.get("")[2].decode()
    assert "<script src=\"/app.js\"" in page and "<script>" not in page and "style=" not in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


def test_another_host_name_is_refused_on_loopback(store, serve):
    s = serve()
    port = s.url.rsplit(":", 1)[1].rstrip("/")
    assert s.get("api/overview", headers={"Host": "evil.example:" + port})[0] == 403
    assert s.get("api/overview", headers={"Host": "localhost:" + port})[0] == 200


def test_a_bad_token_in_the_environment_is_a_usage_error(store):
    p = store.run("serve", "--listen", "127.0.0.1:0", ok=(2,),
                  env={"OMNIQ_DASHBOARD_TOKEN": "short"})
    assert "OMNIQ_DASHBOARD_TOKEN" in p.stderr
    p = store.run("serve", "--listen", "nowhere", ok=(2,))
    assert "--listen" in p.stderr
