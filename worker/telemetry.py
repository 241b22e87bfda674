"""OpenTelemetry traces for workflows and activities, exported over OTLP (HTTP) when
OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set.

Without an exporter the worker does not trace at all: the interceptor's spans would go nowhere,
and it costs a quarter more worker CPU per activity and a header on every command
(bench/RESULTS.md)."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SERVICE_NAME = "failback-worker"


def configure_tracing(extra_processor: SpanProcessor | None = None) -> TracerProvider:
    """Install a tracer provider; call once per process, before the Temporal client connects."""
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME)}
        )
    )
    if traces_exported():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The exporter reads the endpoint, headers and timeout from the standard OTEL_* variables.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if extra_processor is not None:
        provider.add_span_processor(extra_processor)
    trace.set_tracer_provider(provider)
    return provider


def traces_exported() -> bool:
    """Whether an OTLP endpoint is configured for traces."""
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracing_interceptors() -> list[Any]:
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]
