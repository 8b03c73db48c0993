"""OpenTelemetry traces (router.server.tracing): the real app over the real Router, driven
through the official openai and anthropic SDKs in-process, spans caught by the SDK's
InMemorySpanExporter; then the OTLP/HTTP exporter for real, into a local receiver that
decodes the protobuf with opentelemetry-proto."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.trace", reason="the `otel` extra (opentelemetry-sdk) is not installed")

from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from providers.fake import FakeProvider, Script, reply  # noqa: E402
from router.config.schema import QuotarouteConfig, TracingCfg  # noqa: E402
from router.errors import RateLimited  # noqa: E402
from router.server.settings import ServerSettings  # noqa: E402
from router.server.tracing import Tracing  # noqa: E402
from router.server.auth import KeyStore, ProxyKey, hash_key  # noqa: E402
from tests.router.server.conftest import make_app  # noqa: E402
from tests.router.server.test_real_router import clients, real_router  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
PROMPT = "the launch code is tangerine-42, keep it quiet"
SECRET_MSG = [{"role": "user", "content": PROMPT}]
KEY_A = "qr-trace-key-7f3a9c1e5b"
UPSTREAM_SECRET = "sk-proj-UPSTREAMsecretKEY0123456789abcdefXYZ"


def keyed_settings() -> ServerSettings:
    return ServerSettings(keys=KeyStore([ProxyKey("team-t", hash_key(KEY_A))]))


def traced_app(spend_path: Any, router: Any = None, settings: Any = None, cfg: TracingCfg | None = None,
               ) -> tuple[Any, InMemorySpanExporter]:
    """The app over the real Router, its spans caught in memory."""
    exp = InMemorySpanExporter()
    tr = Tracing(cfg or TracingCfg(enabled=True, service_name="qr-test"), processor=SimpleSpanProcessor(exp))
    return make_app(router or real_router(), spend_path, settings, tracing=tr), exp


def by_name(spans: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def all_text(spans: Any) -> str:
    """Every span name, attribute and status text, as one string (to look for secrets in)."""
    parts = []
    for s in spans:
        parts.append(s.name)
        parts += [f"{k}={v}" for k, v in (s.attributes or {}).items()]
        parts.append(str(s.status.description or ""))
        parts += [f"{e.name} {dict(e.attributes or {})}" for e in s.events]
    parts += [str(dict(spans[0].resource.attributes))] if spans else []
    return "\n".join(parts)


async def test_span_tree_attributes_and_parent_from_traceparent(spend_path: Any) -> None:
    app, exp = traced_app(spend_path, settings=keyed_settings())
    o, _, _ = clients(app)
    o = o.with_options(api_key=KEY_A)
    raw = await o.chat.completions.with_raw_response.create(model="auto", messages=SECRET_MSG,
                                                             extra_headers={"traceparent": TRACEPARENT})
    assert raw.parse().choices[0].message.content == "from a"
    spans = exp.get_finished_spans()
    names = by_name(spans)
    (root,) = names["POST /v1/chat/completions"]
    # the request span continues the caller's trace, as a child of its span
    assert format(root.context.trace_id, "032x") == TRACE_ID
    assert root.parent is not None and format(root.parent.span_id, "016x") == PARENT_ID and root.parent.is_remote
    assert root.kind == SpanKind.SERVER
    # routing, the ledger calls and the one upstream attempt are its children, in one trace
    for name in ("route", "ledger.reserve", "chat small", "ledger.commit"):
        (s,) = names[name]
        assert s.parent.span_id == root.context.span_id, name
        assert s.context.trace_id == root.context.trace_id
        assert root.start_time <= s.start_time and s.end_time <= root.end_time
    assert set(names) == {"POST /v1/chat/completions", "route", "ledger.reserve", "chat small", "ledger.commit"}
    a = root.attributes
    assert (a["http.request.method"], a["http.route"], a["http.response.status_code"]) == \
        ("POST", "/v1/chat/completions", 200)
    assert a["gen_ai.request.model"] == "auto" and a["gen_ai.response.model"] == "small"
    assert a["gen_ai.provider.name"] == "pa" and a["quotaroute.model_id"] == "pa:small"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (10, 5)
    assert a["quotaroute.cost_usd"] == pytest.approx(0.00002)  # 10 in * $1/M + 5 out * $2/M
    assert a["quotaroute.route_reason"].startswith("cheapest: pa:small")
    assert a["quotaroute.attempts"] == 1 and a["quotaroute.fallback"] is False
    assert root.resource.attributes["service.name"] == "qr-test"
    (call,) = names["chat small"]
    c = call.attributes
    assert call.kind == SpanKind.CLIENT
    assert c["gen_ai.operation.name"] == "chat" and c["gen_ai.provider.name"] == "pa"
    assert c["gen_ai.request.model"] == "small" and c["gen_ai.response.model"] == "small"
    assert (c["gen_ai.usage.input_tokens"], c["gen_ai.usage.output_tokens"]) == (10, 5)
    assert c["quotaroute.cost_usd"] == pytest.approx(0.00002) and c["quotaroute.attempt"] == 0
    assert c["gen_ai.response.finish_reasons"] == ("stop",)
    assert c["quotaroute.route_reason"] == a["quotaroute.route_reason"]
    (route,) = names["route"]
    assert route.attributes["quotaroute.policy"] == "cheapest" and route.attributes["quotaroute.model_id"] == "pa:small"
    (commit,) = names["ledger.commit"]
    assert commit.attributes["quotaroute.cost_usd"] == pytest.approx(0.00002)
    # no prompt, no answer, no key anywhere in what is exported
    text = all_text(spans)
    for secret in ("tangerine", "launch code", "from a", KEY_A):
        assert secret not in text
    await app.aclose()


async def test_fallback_attempts_each_a_span_with_index_and_error(spend_path: Any) -> None:
    pa = FakeProvider(name="pa", scripts=[Script(error=RateLimited(f"slow down (key {UPSTREAM_SECRET})",
                                                                   provider="pa", retry_after=5))])
    app, exp = traced_app(spend_path, router=real_router(pa=pa))
    o, _, _ = clients(app)
    r = await o.chat.completions.create(model="auto", messages=SECRET_MSG)
    assert r.choices[0].message.content == "from b"
    spans = exp.get_finished_spans()
    names = by_name(spans)
    (root,) = names["POST /v1/chat/completions"]
    assert root.parent is None  # no traceparent: a new trace
    (first,), (second,) = names["chat small"], names["chat big"]
    assert first.attributes["quotaroute.attempt"] == 0 and second.attributes["quotaroute.attempt"] == 1
    assert first.attributes["error.type"] == "RateLimited" and first.status.status_code == StatusCode.ERROR
    assert "error.type" not in second.attributes and second.attributes["gen_ai.response.model"] == "big"
    assert first.attributes["quotaroute.cost_usd"] == 0.0
    assert second.attributes["quotaroute.cost_usd"] == pytest.approx(0.00006)  # 10 * $3/M + 5 * $6/M
    assert root.attributes["quotaroute.fallback"] is True and root.attributes["quotaroute.attempts"] == 2
    assert "fell back to pb:big" in root.attributes["quotaroute.route_reason"]
    assert len(names["ledger.reserve"]) == 2 and len(names["ledger.release"]) == 1 and len(names["ledger.commit"]) == 1
    text = all_text(spans)
    assert UPSTREAM_SECRET not in text and "tangerine" not in text
    await app.aclose()


async def test_stream_request_span_ends_with_the_stream_and_final_cost(spend_path: Any) -> None:
    app, exp = traced_app(spend_path)
    o, _, _ = clients(app)
    stream = await o.chat.completions.create(model="auto", messages=SECRET_MSG, stream=True,
                                             extra_headers={"traceparent": TRACEPARENT})
    text = ""
    async for ch in stream:
        if ch.choices:
            text += ch.choices[0].delta.content or ""
    assert text == "from a"
    names = by_name(exp.get_finished_spans())
    (root,) = names["POST /v1/chat/completions"]
    (call,) = names["chat small"]
    assert format(root.context.trace_id, "032x") == TRACE_ID
    assert call.parent.span_id == root.context.span_id and call.end_time <= root.end_time
    assert root.attributes["quotaroute.stream"] is True
    assert (root.attributes["gen_ai.usage.input_tokens"], root.attributes["gen_ai.usage.output_tokens"]) == (10, 5)
    assert root.attributes["quotaroute.cost_usd"] == pytest.approx(0.00002)
    assert call.attributes["quotaroute.cost_usd"] == pytest.approx(0.00002)
    assert call.attributes["gen_ai.usage.output_tokens"] == 5
    assert "ledger.commit" in names and "tangerine" not in all_text(exp.get_finished_spans())
    await app.aclose()


async def test_anthropic_wire_and_a_refused_request(spend_path: Any) -> None:
    app, exp = traced_app(spend_path, settings=keyed_settings())
    await app.warm_up()  # plans a dummy request: outside any request, so no trace
    assert exp.get_finished_spans() == ()
    _, a, hc = clients(app)
    m = await a.with_options(api_key=KEY_A).messages.create(model="auto", max_tokens=50, messages=SECRET_MSG)
    assert m.content[0].text == "from a"
    r = await hc.post("/v1/chat/completions", json={"model": "auto", "messages": SECRET_MSG},
                      headers={"authorization": "Bearer qr-wrong-key-DEADBEEF-0000"})
    assert r.status_code == 401
    await hc.get("/healthz")  # not traced
    await hc.get("/v1/models/pa%3Asmall", headers={"authorization": f"Bearer {KEY_A}"})
    names = by_name(exp.get_finished_spans())
    (msg,) = names["POST /v1/messages"]
    assert msg.attributes["gen_ai.response.model"] == "small" and msg.attributes["http.response.status_code"] == 200
    (refused,) = names["POST /v1/chat/completions"]
    assert refused.attributes["http.response.status_code"] == 401 and refused.attributes["error.type"] == "401"
    assert "GET /healthz" not in names
    (one,) = names["GET /v1/models/{model}"]  # the route, not the path, names the span
    assert one.attributes["http.route"] == "/v1/models/{model}"
    text = all_text(exp.get_finished_spans())
    assert "qr-wrong-key-DEADBEEF" not in text and KEY_A not in text
    await app.aclose()


def test_config_section() -> None:
    cfg = QuotarouteConfig.model_validate({"tracing": {"enabled": True, "endpoint": "http://127.0.0.1:4318",
                                                       "protocol": "grpc", "sample_ratio": 0.25,
                                                       "headers_env": "OTLP_HEADERS"}})
    t = cfg.tracing
    assert (t.enabled, t.protocol, t.sample_ratio, t.headers_env) == (True, "grpc", 0.25, "OTLP_HEADERS")
    assert QuotarouteConfig().tracing.enabled is False
    from router.config import build_server_settings

    assert build_server_settings(cfg).tracing is t
    for bad in ({"sample_ratio": 2}, {"protocol": "zipkin"}, {"headers_env": "authorization=Bearer sk-x"},
                {"endpoints": "x"}):
        with pytest.raises(Exception):
            QuotarouteConfig.model_validate({"tracing": bad})


def test_off_by_default_imports_nothing() -> None:
    """Tracing off (the default): building and serving the app never imports opentelemetry."""
    code = ("import sys, asyncio\n"
            "import httpx2, openai\n"
            "from providers.fake import FakeProvider, reply\n"
            "from router.catalog import Catalog\n"
            "from router.quota.ledger import Ledger\n"
            "from router.quota.memory_store import MemoryStore\n"
            "from router.sdk import Router\n"
            "from router.server.app import create_app\n"
            "from router.server.settings import ServerSettings\n"
            "from tests.router.routing_helpers import card\n"
            "router = Router(catalog=Catalog([card('pa:small', '1', '2')]), providers={'pa': FakeProvider(name='pa', "
            "scripts=[reply('from a')])}, ledger=Ledger(MemoryStore(), []), policy='cheapest')\n"
            "s = ServerSettings(spend_db=None); s.responses = s.responses.model_copy(update={'db': 'off'})\n"
            "app = create_app(router, s)\n"
            "assert app.tracing is None\n"
            "async def go():\n"
            "    hc = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url='http://t')\n"
            "    o = openai.AsyncOpenAI(api_key='x', base_url='http://t/v1', http_client=hc, max_retries=0)\n"
            "    r = await o.chat.completions.create(model='auto', messages=[{'role': 'user', 'content': 'hi'}])\n"
            "    assert r.choices[0].message.content == 'from a'\n"
            "    r = await o.chat.completions.create(model='auto', messages=[{'role': 'user', 'content': 'hi'}],\n"
            "                                        stream=True)\n"
            "    assert [c async for c in r]\n"
            "    await app.aclose()\n"
            "asyncio.run(go())\n"
            "bad = [m for m in sys.modules if m.startswith('opentelemetry') or m.startswith('router.server.tracing')]\n"
            "assert not bad, bad\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr[-2000:]


# ---------------------------------------------------------------- the OTLP/HTTP exporter, for real

class _Receiver(BaseHTTPRequestHandler):
    got: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        type(self).got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def test_otlp_http_export_to_a_local_receiver(spend_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    _Receiver.got = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("QR_TEST_OTLP_HEADERS", "authorization=Bearer%20collector-token,x-team=qa")
        settings = ServerSettings(tracing=TracingCfg(enabled=True, endpoint=f"http://127.0.0.1:{srv.server_port}",
                                                     service_name="qr-otlp", headers_env="QR_TEST_OTLP_HEADERS"))
        app = make_app(real_router(), spend_path, settings)  # the OTLP exporter from the config, as `serve` builds it
        assert app.tracing is not None
        o, _, _ = clients(app)
        r = await o.chat.completions.create(model="auto", messages=SECRET_MSG,
                                            extra_headers={"traceparent": TRACEPARENT})
        assert r.choices[0].message.content == "from a"
        await app.aclose()  # flushes the batch
    finally:
        srv.shutdown()
        srv.server_close()
    assert _Receiver.got, "nothing was exported"
    spans, resources = [], []
    for path, headers, body in _Receiver.got:
        assert path == "/v1/traces"
        assert headers["content-type"] == "application/x-protobuf"
        assert headers["authorization"] == "Bearer collector-token" and headers["x-team"] == "qa"
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        for rs in req.resource_spans:
            resources.append({kv.key: kv.value.string_value for kv in rs.resource.attributes})
            for ss in rs.scope_spans:
                spans += list(ss.spans)
    assert {"service.name": "qr-otlp"}.items() <= resources[0].items()
    names = {s.name: s for s in spans}
    assert set(names) >= {"POST /v1/chat/completions", "route", "ledger.reserve", "chat small", "ledger.commit"}
    root = names["POST /v1/chat/completions"]
    assert root.trace_id.hex() == TRACE_ID and root.parent_span_id.hex() == PARENT_ID
    assert names["chat small"].parent_span_id == root.span_id
    attrs = {kv.key: kv.value for kv in names["chat small"].attributes}
    assert attrs["gen_ai.provider.name"].string_value == "pa"
    assert attrs["gen_ai.usage.output_tokens"].int_value == 5
    assert attrs["quotaroute.cost_usd"].double_value == pytest.approx(0.00002)
    raw = b"".join(b for _, _, b in _Receiver.got)
    assert b"tangerine" not in raw and b"from a" not in raw


def test_exporter_per_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    from router.server.tracing import otlp_exporter

    e = otlp_exporter(TracingCfg(enabled=True, endpoint="http://127.0.0.1:4318"))
    assert isinstance(e, Http) and e._endpoint == "http://127.0.0.1:4318/v1/traces"  # a bare address: its traces path
    e = otlp_exporter(TracingCfg(enabled=True, endpoint="http://127.0.0.1:4318/custom/traces"))
    assert e._endpoint == "http://127.0.0.1:4318/custom/traces"
    monkeypatch.setenv("QR_TEST_H", "authorization=Bearer%20t0ken")
    g = otlp_exporter(TracingCfg(enabled=True, protocol="grpc", endpoint="http://127.0.0.1:4317", headers_env="QR_TEST_H"))
    assert isinstance(g, Grpc)
    g.shutdown()


async def test_sampling_new_traces_and_the_callers_decision(spend_path: Any) -> None:
    app, exp = traced_app(spend_path, cfg=TracingCfg(enabled=True, sample_ratio=0.0))
    o, _, _ = clients(app)
    await o.chat.completions.create(model="auto", messages=SECRET_MSG)  # a new trace, ratio 0: not kept
    assert exp.get_finished_spans() == ()
    await o.chat.completions.create(model="auto", messages=SECRET_MSG, extra_headers={"traceparent": TRACEPARENT})
    names = by_name(exp.get_finished_spans())  # the caller sampled it: kept, whole
    assert {"POST /v1/chat/completions", "route", "chat small", "ledger.commit"} <= set(names)
    exp.clear()
    await o.chat.completions.create(model="auto", messages=SECRET_MSG,
                                    extra_headers={"traceparent": TRACEPARENT[:-2] + "00"})
    assert exp.get_finished_spans() == ()  # the caller did not sample it
    await app.aclose()
