"""The gateway: an OpenAI-compatible server that forwards each call upstream and records it.

    app.py       the ASGI app and its routes
    pipeline.py  authenticate -> resolve task -> route -> call upstream -> record
    router.py    task resolution and the route decision (where routing modes slot in)
    upstream.py  the pooled upstream client and fault mapping
    exchange.py  what was captured on the wire, and how it becomes a `Call`
    spool.py     durable, group-fsync'd append-only spool with crash replay
    writer.py    the background batch writer into the trace store
    recorder.py  spool + writer: the one way captured calls reach the store
    otlp.py      the OTLP/HTTP trace receiver
    server.py    running it under uvicorn
    standin.py   a stand-in upstream for demos, benchmarks and tests
"""
