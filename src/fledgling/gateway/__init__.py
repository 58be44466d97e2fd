"""The gateway: the OpenAI-compatible server agents point their `base_url` at.

    app.py       the ASGI app and its routes
    pipeline.py  authenticate -> check the body -> resolve the task -> route -> hand the turn
                 to its routing mode (`fledgling.swap.modes`)
    admin.py     the admin API: rollout changes and live figures
    otlp.py      the OTLP/HTTP trace receiver
    server.py    running it under uvicorn (and in a thread, for tests and benchmarks)

Routing modes live in `fledgling.swap`, the HTTP vocabulary and upstream pool in
`fledgling.transport`, recording in `fledgling.capture.recording`.
"""
