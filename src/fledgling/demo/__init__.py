"""The bundled demo: synthetic traffic of a support agent and a ticket triager, and `fledgling demo`.

`generate_calls(seed, n)` yields deterministic, clearly synthetic calls (`metadata.synthetic`)
with the right answer in `metadata.ground_truth` and the planted mistake, if any, in
`metadata.llm_error`.
"""

from fledgling.demo.traffic import TASKS, generate_calls

__all__ = ["TASKS", "generate_calls"]
