"""The HTTP vocabulary the gateway and swap share: ASGI types and replies (`asgi.py`), the
pooled upstream client and its endpoints (`upstream.py`), and OpenAI's SSE shape (`sse.py`)."""
