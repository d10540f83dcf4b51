"""Logs and traces of the real app on the real store (MariaDB, memcached): one JSON line per
request and per job with no secret in any line, and spans that run from a request into the jobs
it enqueued, with none per field."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from config import LoggingSettings, TracingSettings
from config.observability import traces
from config.observability.logs import configure_logging
from tests.resolvers.messages_client import DM
from tests.schema.client import graphql_settings, running_app


@pytest.fixture
def settings(services, test_id, tmp_path):
    return graphql_settings("mysql", services, test_id, tmp_path)


@pytest.fixture
def captured_logs():
    """Every record of the process, as the JSON formatter writes it, at the production level."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging(LoggingSettings(format="json", level="INFO"), role="test", stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    traces.configure_tracing(TracingSettings(), role="test", exporter=exporter)
    try:
        yield exporter
    finally:
        traces.shutdown_tracing()


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_one_json_line_per_request_and_job_and_no_secret_in_any(settings, captured_logs):
    password = "pw-" + uuid.uuid4().hex
    secret_text = "the-secret-message-" + uuid.uuid4().hex
    async with running_app(settings) as gql:
        ann = (await gql.ok("mutation($i: AccountSignUpInput!) { signUp(input: $i) { token user { id } } }",
                            {"i": {"username": "ann_" + uuid.uuid4().hex[:8], "password": password}}))["signUp"]
        bob_token, bob_id = await gql.sign_up("bob_" + uuid.uuid4().hex[:8])
        ann_token = ann["token"]
        await gql.mutate("follow", ann_token, bob_id)
        await gql.mutate("follow", bob_token, ann["user"]["id"])
        sent = await DM(gql).sent(ann_token, to=[bob_id], text=secret_text)
        assert sent["message"]["text"] == secret_text
        status, wrong = await gql.post(
            "mutation($i: AccountLogInInput!) { logIn(input: $i) { token errors { code } } }",
            {"i": {"username": "nobody", "password": password + "-wrong"}})
        assert status == 200
        status, _ = await gql.post("{ viewer { username } }", headers={"Authorization": "Bearer " + "x" * 40})
        assert status == 401
        body = await gql("query Me { viewer { username } }", token=ann_token)
        request_id = body["extensions"]["requestId"]
        ran = await gql.tao.run_jobs_until_idle()
        assert ran > 0

    lines = _lines(captured_logs)
    requests = [line for line in lines if line["logger"] == "taogram.request"]
    jobs = [line for line in lines if line["logger"] == "taogram.job"]
    # One line per request: 7 operations, and the 401 refused before any ran.
    assert len(requests) == 8, requests
    (refused,) = [line for line in requests if line["outcome"] == "rejected"]
    assert refused["status"] == 401 and refused["error_codes"] == ["UNAUTHENTICATED"]
    me = [line for line in requests if line["request_id"] == request_id]
    assert len(me) == 1
    assert me[0]["operation"] == "Me" and me[0]["outcome"] == "ok" and me[0]["viewer_id"] is not None
    assert me[0]["cost"] >= 1 and me[0]["duration_ms"] > 0 and me[0]["level"] == "info"
    assert all(line["request_id"] for line in requests)
    assert len(jobs) == ran and all(line["job_id"] and line["handler"] and line["outcome"] == "ok" for line in jobs)

    text = captured_logs.getvalue()
    for secret in (password, secret_text, ann_token, bob_token, "x" * 40):
        assert secret not in text, f"a secret reached the logs: {secret[:12]}..."


async def test_spans_run_from_the_request_into_its_jobs_and_none_per_field(settings, spans):
    async with running_app(settings) as gql:
        ann_token, _ = await gql.sign_up("ann_" + uuid.uuid4().hex[:8])
        _, bob_id = await gql.sign_up("bob_" + uuid.uuid4().hex[:8])
        await gql.tao.run_jobs_until_idle()
        spans.clear()
        caller_trace = uuid.uuid4().hex
        status, body = await gql.post(
            "mutation Follow($i: ID!) { follow(input: {userId: $i}) { status errors { code } } }",
            {"i": bob_id}, ann_token, headers={"traceparent": f"00-{caller_trace}-{'1' * 16}-01"})
        assert status == 200 and body["data"]["follow"]["errors"] == []
        request_spans = list(spans.get_finished_spans())
        ran = await gql.tao.run_jobs_until_idle()
        assert ran > 0
        all_spans = list(spans.get_finished_spans())

    names = {s.name for s in request_spans}
    assert {"graphql.request", "graphql.parse", "graphql.validate", "graphql.execute", "sql", "cache.get"} <= names
    assert any(n.startswith("tao.") for n in names)
    allowed = re.compile(r"graphql\.(request|parse|validate|execute)|tao\.\w+|sql|cache\.(get|install)|job [\w.]+")
    assert all(allowed.fullmatch(s.name) for s in all_spans), sorted({s.name for s in all_spans})
    (request,) = [s for s in request_spans if s.name == "graphql.request"]
    assert format(request.context.trace_id, "032x") == caller_trace  # joined the caller's trace
    assert request.attributes["graphql.operation.name"] == "Follow"
    sql = [s for s in request_spans if s.name == "sql"]
    assert all("taogram.shard" in s.attributes for s in sql)
    # The jobs the mutation enqueued run in the request's trace, each under its own span.
    jobs = [s for s in all_spans if s.name.startswith("job ")]
    assert len(jobs) == ran
    assert all(j.context.trace_id == request.context.trace_id for j in jobs)
    # No span per field: a query over many fields makes as many spans as one over few.
    spans.clear()
    await _count_spans_of(settings, spans, ann_token)


async def _count_spans_of(settings, spans, token):
    async with running_app(settings) as gql:
        counts = []
        for fields in ("username", "username fullName bio website isPrivate id __typename"):
            await gql.ok(f"{{ viewer {{ {fields} }} }}", token=token)  # warm the cache for the viewer
            spans.clear()
            await gql.ok(f"{{ viewer {{ {fields} }} }}", token=token)
            counts.append(sorted(s.name for s in spans.get_finished_spans()))
        assert counts[0] == counts[1], counts


def test_tracing_is_off_by_default():
    assert traces.tracer is None
    assert traces.with_trace_context({"a": 1}) == {"a": 1}
    assert traces.configure_tracing(TracingSettings()) is False


def test_spans_are_exported_over_otlp_when_an_endpoint_is_configured():
    """The OTLP/HTTP exporter posts the spans to the configured endpoint (a stand-in collector)."""
    import http.server
    import threading

    received: list[tuple[str, str, int]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], len(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
        assert traces.configure_tracing(TracingSettings(otlp_endpoint=endpoint), role="test")
        with traces.span("graphql.request"):
            with traces.span("sql", {"taogram.shard": 3}):
                pass
        traces.shutdown_tracing()  # flushes the batch
    finally:
        server.shutdown()
        traces.shutdown_tracing()
    assert received and received[0][0] == "/v1/traces" and received[0][1] == "application/x-protobuf"
    assert received[0][2] > 0
