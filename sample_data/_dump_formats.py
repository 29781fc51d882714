"""Encoders for the sample generator: one workload written as OTLP/JSON, Jaeger, Zipkin and logs.

Each function takes the generator's plain span dicts (integer microsecond times, typed attribute
values) and returns the JSON shape a real exporter writes; see ``generate.py`` for the workload
and ``README.md`` for the files.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MODEL_NAME = "intent-classifier"
CLIENT_HALF_NAME = f"POST /v1/models/{MODEL_NAME}:predict"
RESOURCES = {
    "gateway": {"service.version": "2.4.1", "host.name": "gateway-7d9f8"},
    "feature-store": {"service.version": "1.12.0", "host.name": "feature-store-0"},
    "profile-db": {"service.version": "15.4", "host.name": "profile-db-primary"},
    "model-server": {"service.version": "0.9.3", "host.name": "gpu-node-a100-2"},
}
KIND_OTLP = {"internal": 1, "server": 2, "client": 3}
#: the stages the application logs a line for (not the root, not the redis client call)
STAGES_LOGGED = (
    "validate",
    "fetch_features",
    "profile_lookup",
    "preprocess",
    "model.inference",
    "postprocess",
)


def iso_us(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def otlp_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 is a string in the protobuf JSON mapping
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def otlp_attrs(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": otlp_value(v)} for k, v in attributes.items()]


def otlp_resource(service: str) -> dict[str, Any]:
    return {"attributes": otlp_attrs({"service.name": service, **RESOURCES[service]})}


def otlp_span(span: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": span["trace_id"],
        "spanId": span["span_id"],
        "parentSpanId": span["parent_id"] or "",
        "name": span["name"],
        "kind": KIND_OTLP[span["kind"]],
        "startTimeUnixNano": str(span["start"] * 1000),
        "endTimeUnixNano": str(span["end"] * 1000),
        "attributes": otlp_attrs(span["attributes"]),
        "status": {"code": 2, "message": span["message"]} if span["status"] == "error" else {},
    }
    if span["exception"]:
        attrs = {"exception.type": span["exception"], "exception.message": span["message"]}
        out["events"] = [
            {
                "timeUnixNano": str(span["end"] * 1000),
                "name": "exception",
                "attributes": otlp_attrs(attrs),
            }
        ]
    return out


def otlp_spans_document(spans: list[dict[str, Any]]) -> dict[str, Any]:
    by_service: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_service.setdefault(span["service"], []).append(otlp_span(span))
    return {
        "resourceSpans": [
            {
                "resource": otlp_resource(service),
                "scopeSpans": [
                    {"scope": {"name": "inference-app", "version": "1.0"}, "spans": items}
                ],
            }
            for service, items in by_service.items()
        ]
    }


def otlp_logs_document(requests: list[dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """One log record per error span, emitted by the span's service with its trace/span ids."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for req in requests:
        for span in req["spans"]:
            if span["exception"]:
                fatal = span["name"] != "profile_lookup"
                by_service.setdefault(span["service"], []).append(
                    {
                        "timeUnixNano": str(span["end"] * 1000),
                        "observedTimeUnixNano": str(span["end"] * 1000 + 1000),
                        "severityNumber": 17 if fatal else 13,
                        "severityText": "ERROR" if fatal else "WARN",
                        "body": {"stringValue": span["message"]},
                        "attributes": otlp_attrs(
                            {
                                "exception.type": span["exception"],
                                "exception.message": span["message"],
                            }
                        ),
                        "traceId": span["trace_id"],
                        "spanId": span["span_id"],
                    }
                )
    document = {
        "resourceLogs": [
            {
                "resource": otlp_resource(service),
                "scopeLogs": [{"scope": {"name": "inference-app"}, "logRecords": records}],
            }
            for service, records in by_service.items()
        ]
    }
    return document, sum(len(r) for r in by_service.values())


def otlp_metrics_document(requests: list[dict[str, Any]]) -> dict[str, Any]:
    start = min(r["spans"][0]["start"] for r in requests) * 1000
    end = max(s["end"] for r in requests for s in r["spans"]) * 1000
    point = {
        "startTimeUnixNano": str(start),
        "timeUnixNano": str(end),
        "asInt": str(len(requests)),
    }
    metric = {
        "name": "http.server.request.count",
        "unit": "1",
        "sum": {"dataPoints": [point], "aggregationTemporality": 2, "isMonotonic": True},
    }
    return {
        "resourceMetrics": [
            {
                "resource": otlp_resource("gateway"),
                "scopeMetrics": [{"scope": {"name": "inference-app"}, "metrics": [metric]}],
            }
        ]
    }


def jaeger_tag(key: str, value: Any) -> dict[str, Any]:
    kind = (
        "bool"
        if isinstance(value, bool)
        else "int64"
        if isinstance(value, int)
        else "float64"
        if isinstance(value, float)
        else "string"
    )
    return {"key": key, "type": kind, "value": value}


def jaeger_trace(req: dict[str, Any]) -> dict[str, Any]:
    processes: dict[str, str] = {}
    spans = []
    for span in req["spans"]:
        pid = processes.setdefault(span["service"], f"p{len(processes) + 1}")
        tags = [jaeger_tag(k, v) for k, v in span["attributes"].items()]
        tags.append(jaeger_tag("span.kind", span["kind"]))
        logs = []
        if span["status"] == "error":
            tags += [
                jaeger_tag("error", True),
                jaeger_tag("otel.status_code", "ERROR"),
                jaeger_tag("otel.status_description", span["message"]),
            ]
        if span["exception"]:
            fields = [
                jaeger_tag("event", "error"),
                jaeger_tag("error.kind", span["exception"]),
                jaeger_tag("message", span["message"]),
            ]
            logs.append({"timestamp": span["end"], "fields": fields})
        refs = (
            [{"refType": "CHILD_OF", "traceID": span["trace_id"], "spanID": span["parent_id"]}]
            if span["parent_id"]
            else []
        )
        spans.append(
            {
                "traceID": span["trace_id"],
                "spanID": span["span_id"],
                "operationName": span["name"],
                "references": refs,
                "startTime": span["start"],
                "duration": span["end"] - span["start"],
                "tags": tags,
                "logs": logs,
                "processID": pid,
            }
        )
    procs = {
        pid: {"serviceName": s, "tags": [jaeger_tag(k, v) for k, v in RESOURCES[s].items()]}
        for s, pid in processes.items()
    }
    return {"traceID": req["trace_id"], "spans": spans, "processes": procs, "warnings": None}


def zipkin_tag(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def zipkin_spans(req: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for span in req["spans"]:
        tags = {k: zipkin_tag(v) for k, v in span["attributes"].items()}
        if span["status"] == "error":
            tags["otel.status_code"], tags["error"] = "ERROR", span["message"]
        item: dict[str, Any] = {"traceId": span["trace_id"], "id": span["span_id"]}
        if span["parent_id"]:
            item["parentId"] = span["parent_id"]
        item.update(
            name=span["name"], timestamp=span["start"], duration=span["end"] - span["start"]
        )
        if span["kind"] != "internal":
            item["kind"] = span["kind"].upper()
        item["localEndpoint"] = {"serviceName": span["service"]}
        item["tags"] = tags
        if "client_half" in span:
            # B3 shared span: the gateway's CLIENT half and the server half carry one id.
            item["shared"] = True
            item["remoteEndpoint"] = {"serviceName": "gateway"}
            start, end = span["client_half"]
            client_tags = {"http.method": "POST", "http.path": CLIENT_HALF_NAME.split(" ", 1)[1]}
            if span["status"] == "error":
                client_tags.update(
                    {
                        "http.status_code": "500",
                        "otel.status_code": "ERROR",
                        "error": span["message"],
                    }
                )
            out.append(
                {
                    "traceId": span["trace_id"],
                    "id": span["span_id"],
                    "parentId": span["parent_id"],
                    "name": CLIENT_HALF_NAME,
                    "timestamp": start,
                    "duration": end - start,
                    "kind": "CLIENT",
                    "localEndpoint": {"serviceName": "gateway"},
                    "remoteEndpoint": {"serviceName": "model-server"},
                    "tags": client_tags,
                }
            )
        out.append(item)
    rng.shuffle(out)  # Zipkin returns spans in no particular order
    return out


def app_log_lines(requests: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """structlog JSONRenderer lines: bound context first, then the event, level and timestamp."""
    lines = []
    for req in requests:
        base = {"request_id": req["request_id"], "trace_id": req["trace_id"]}
        for span in req["spans"]:
            if span["name"] not in STAGES_LOGGED:
                continue
            line = {
                **base,
                "stage": span["name"],
                "duration_ms": (span["end"] - span["start"]) / 1000,
            }
            if span["name"] == "model.inference":
                line["model_version"] = span["attributes"]["model.version"]
                if "prediction" in span["attributes"]:
                    line["prediction"] = span["attributes"]["prediction"]
                    line["confidence"] = span["attributes"]["confidence"]
            if span["status"] == "error":
                fatal = span["name"] != "profile_lookup"
                line["error"] = span["message"]
                line.update(
                    event="stage failed" if fatal else "profile lookup failed, using defaults",
                    level="error" if fatal else "warning",
                )
            else:
                line.update(event="stage finished", level="info")
            lines.append((span["end"], line))
        root = req["spans"][0]
        final = {
            **base,
            "duration_ms": (root["end"] - root["start"]) / 1000,
            "http_status": root["attributes"]["http.status_code"],
        }
        if req["error"]:
            final.update(error=req["error"][1], event="request failed", level="error")
        else:
            final.update(event="request completed", level="info")
        lines.append((root["end"], final))
    lines.sort(key=lambda item: item[0])  # one file, requests interleaved as they finish
    for end, line in lines:
        line["timestamp"] = iso_us(end)
    return lines
