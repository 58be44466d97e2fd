"""Trainer backends: turn a curated dataset into a candidate model, with its provenance.

`orchestrator.train(spec, store)` is the entry point; backends (`lora`, `unsloth`, `openai`,
`dry-run`) share the prepare -> run interface (`TrainerBackend`) in `backend.py`, and
`registry.py` maps a backend's name to its module.
"""
