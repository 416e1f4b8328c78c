"""SRV-001's suspects from a death's timeline, and the judge's stop on a dead server.

Timelines here are what the recording client keeps of real deaths: a request answered
with a 500 and then connections refused (vLLM 0.26.0's engine on an H200, the fault
proxy's dies-on-seed-beyond-int64), requests reset in flight, a dead engine answering
500 until its process exits. The suite's verdicts on a real dying server are tested
through the fault proxy in front of the embedded vLLM (tests/test_suite_on_vllm.py)."""

from __future__ import annotations

from typing import Any

import pytest

from logprobe.client import Exchange
from logprobe.invariants.survival import check_survived, kind, merge, suspects
from logprobe.judge import Judge, Judgement
from logprobe.liveness import ServerDown, record

REFUSED = "ConnectError: [Errno 111] Connection refused"
RESET = "RemoteProtocolError: Server disconnected without sending a response."


def sent(name: str, at: float, took: float = 0.2, status: int | None = 200,
         error: str | None = None, retries: list[str] | None = None) -> dict[str, Any]:
    return {"sent_at": at, "elapsed": took, "url": "http://h/v1/completions", "status": status,
            "transport_error": error, "retries": retries or [], "curl": f"curl {name}",
            "summary": name, "method": "POST", "endpoint": "/completions",
            "request": {"prompt": name}}


def names(found: list[dict[str, Any]]) -> list[str]:
    return [e["summary"] for e in found]


def test_a_request_never_connected_on_any_attempt_is_refused_and_one_dropped_reached_it():
    assert kind(sent("a", 0, error=REFUSED, status=None, retries=[REFUSED, REFUSED])) == "refused"
    assert kind(sent("b", 0, error=REFUSED, status=None, retries=[RESET])) == "failed"
    assert kind(sent("c", 0, error=RESET, status=None)) == "failed"
    assert kind(sent("d", 0, status=500)) == "failed"
    assert kind(sent("e", 0, status=400)) == "answered"


def test_the_request_answered_500_before_the_refusals_leads_the_suspects():
    timeline = [sent("ok1", 0.0), sent("ok2", 1.0), sent("killer", 2.0, status=500),
                sent("after", 3.0, status=None, error=REFUSED, retries=[REFUSED, REFUSED])]
    assert names(suspects(timeline)) == ["killer", "ok2", "ok1"]


def test_a_dead_engine_answering_500_until_its_process_exits_leads_with_the_first_500():
    timeline = [sent("ok", 0.0), sent("killer", 1.0, status=500), sent("dead1", 2.0, status=500),
                sent("dead2", 3.0, status=500), sent("gone", 4.0, status=None, error=REFUSED)]
    assert names(suspects(timeline))[:3] == ["killer", "dead1", "dead2"]


def test_an_old_500_the_server_survived_is_no_suspect():
    timeline = [sent("survived", 0.0, status=500), sent("ok", 30.0), sent("killer", 40.0,
                                                                        status=None, error=RESET),
                sent("gone", 41.0, status=None, error=REFUSED)]
    assert names(suspects(timeline)) == ["killer", "ok"]


def test_a_concurrent_answer_finished_after_the_killer_does_not_acquit_it():
    timeline = [sent("killer", 0.0, took=0.05, status=500), sent("slow", 0.01, took=0.1),
                sent("reset", 0.02, took=0.3, status=None, error=RESET),
                sent("gone", 1.0, status=None, error=REFUSED)]
    assert names(suspects(timeline))[:2] == ["killer", "reset"]


def test_a_quiet_death_after_an_answer_names_the_last_answers():
    timeline = [sent("a", 0.0), sent("b", 1.0), sent("c", 2.0),
                sent("gone", 3.0, status=None, error=REFUSED)]
    assert names(suspects(timeline)) == ["c", "b"]


def test_workers_timelines_merge_once_each_in_order():
    a, b = sent("a", 1.0), sent("b", 0.5)
    assert names(merge([a, b, dict(a)])) == ["b", "a"]


def test_the_finding_names_the_killer_when_narrowed_and_says_why_not_otherwise():
    named = [sent("killer", 1.0, status=500)]
    [found] = check_survived("the fault proxy's process exited", named,
                             {"killer": named[0], "replayed": 1})
    assert found.id == "SRV-001" and "took it down again" in found.message
    assert "curl killer" in found.message
    [found] = check_survived("refused", named, {"killer": None, "why": "cannot restart"})
    assert "not narrowed to one request: cannot restart" in found.message
    assert check_survived(None, [], {}) == []


class DownAfterThis:
    """A watch whose server went down: what the plugin's Watch raises."""

    def __call__(self, exchange: Exchange) -> None:
        raise ServerDown("refused", exchange)


def test_a_request_that_got_no_answer_stops_the_test_as_server_down_not_as_an_error():
    judge = Judge(Judgement(), on_no_answer=DownAfterThis())
    refused = Exchange("POST", "http://h/v1/completions", {"prompt": "x"},
                       transport_error=REFUSED, retries=[REFUSED, REFUSED])
    with pytest.raises(ServerDown) as stopped:
        judge.ok(refused)
    assert stopped.value.exchange is refused and not stopped.value.reached
    assert judge.judgement.exchanges == []  # never a reproducer of an unanswered request
    dropped = Exchange("POST", "http://h/v1/completions", {"prompt": "x"}, transport_error=RESET)
    with pytest.raises(ServerDown) as stopped:
        Judge(Judgement(), on_no_answer=DownAfterThis()).ok(dropped)
    assert stopped.value.reached


def test_an_answered_5xx_is_judged_as_an_answer_without_asking_whether_the_server_is_down():
    from logprobe.judge import ConformanceFailure

    judge = Judge(Judgement(), on_no_answer=DownAfterThis())
    answered = Exchange("POST", "http://h/v1/completions", {"prompt": "x"}, status=500,
                        body=b'{"error": {"message": "boom"}}')
    with pytest.raises(ConformanceFailure):
        judge.ok(answered)


def test_a_record_keeps_when_it_was_first_sent_and_a_raw_body_for_the_replay():
    from logprobe.client import RawBody

    exchange = Exchange("POST", "http://h/v1/completions", RawBody(b"not json"), status=400,
                        started_at=5.0, sent_at=3.0)
    kept = record(exchange)
    assert kept["sent_at"] == 3.0 and kept["raw_body"] == "bm90IGpzb24="
    assert kept["endpoint"] == "/completions" and "Authorization: Bearer $OPENAI_API_KEY" in \
        kept["curl"]


def test_requests_sent_before_the_killer_but_reset_by_its_death_do_not_lead():
    """As measured through the dying fault with three workers: echoes handed to the client
    before the killer waited for a connection or were in flight, and failed only when the
    proxy exited after answering the killer with a 500."""
    def at(name: str, sent_at: float, ended_at: float, **kw: Any) -> dict[str, Any]:
        return {**sent(name, sent_at, **kw), "ended_at": ended_at}

    timeline = [at("answer", 0.61, 0.64, status=400),
                at("waited", 0.756, 0.790, status=None, error=REFUSED, retries=[REFUSED]),
                at("in-flight", 0.761, 0.790, status=None, error=REFUSED, retries=[RESET]),
                at("killer", 0.768, 0.789, status=500),
                at("in-flight-2", 0.769, 0.791, status=None, error=REFUSED, retries=[RESET])]
    assert names(suspects(timeline)) == ["killer", "in-flight", "in-flight-2", "answer"]


def test_a_suspect_outside_the_api_is_replayed_at_its_own_url():
    """The server's /tokenize (asked for token-id prompts) sits beside /v1, not below it:
    a suspect sent there is sent there again, not to /v1/tokenize."""
    import http.server
    import json

    from hostile import serve

    from logprobe.client import RecordingClient
    from logprobe.liveness import _replay

    paths: list[str] = []

    class Paths(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            paths.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"tokens": [1]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve(Paths) as root, RecordingClient(root) as client:
        sent = client.post(root + "/tokenize", {"prompt": "hi"})
        again = _replay(client, record(sent))
        completions = _replay(client, record(client.post("/completions", {"prompt": "hi"})))
    assert again.status == 200 and completions.status == 200
    assert paths == ["/tokenize", "/tokenize", "/v1/completions", "/v1/completions"]
