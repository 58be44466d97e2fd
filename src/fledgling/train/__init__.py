"""Trainer backends: turn a curated dataset into a candidate model, with its provenance.

`runner.train(spec, store)` is the entry point; backends (`lora`, `unsloth`, `openai`,
`dry-run`) share the prepare -> run interface in `backend.py`.
"""
