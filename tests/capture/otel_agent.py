"""A small agent under a real OpenTelemetry instrumentation of the `openai` client, exporting
OTLP/HTTP (protobuf) to a Fledgling gateway. Run as a process of its own, so that each
instrumentation patches a fresh `openai`:

    python -m tests.capture.otel_agent v2|traceloop GATEWAY_URL UPSTREAM_URL

`v2` is `opentelemetry-instrumentation-openai-v2` in its default mode (messages as log
records); `traceloop` is Traceloop's `opentelemetry-instrumentation-openai` (messages on the
span). The agent asks, calls the tool the model picks, and asks again with the result.
"""

from __future__ import annotations

import json
import os
import sys

TOOLS = [{"type": "function", "function": {
    "name": "lookup_order", "description": "Find an order by its id",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]


def main(mode: str, gateway: str, upstream: str) -> None:
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
    import openai
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": f"agent-{mode}"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{gateway}/v1/traces")))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{gateway}/v1/logs")))
    if mode == "v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as V2

        V2().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    else:
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as Traceloop

        Traceloop().instrument(tracer_provider=tracer_provider)

    client = openai.OpenAI(base_url=f"{upstream}/v1", api_key="sk-test")
    messages: list[dict] = [{"role": "system", "content": "You help with orders."},
                            {"role": "user", "content": f"Where is order A-{len(mode)}?"}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    messages.append({"role": "assistant", "content": None, "tool_calls": [
        {"id": call.id, "type": "function", "function": {"name": call.function.name,
                                                         "arguments": call.function.arguments}}]})
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"status": "shipped"})})
    second = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    print(json.dumps({"tool_call": [call.function.name, call.function.arguments],
                      "answer": second.choices[0].message.content}))
    tracer_provider.shutdown()
    logger_provider.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:4])
