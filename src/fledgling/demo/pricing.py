"""List prices of the hosted models the demo pretends to call (USD per million tokens)."""

from __future__ import annotations

MODEL = "gpt-4o-2024-08-06"
PROVIDER = "openai"

# model: (input, output) USD per million tokens, as listed by the provider.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-2024-08-06": (2.50, 10.00),
    "gpt-4o-mini-2024-07-18": (0.15, 0.60),
}
