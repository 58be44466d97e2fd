"""Auto-curation: from a task's raw calls to clean, redacted, deduplicated, leak-free splits.

`curate(store, task, ...)` is the one entry point; `fledgling curate` is its command line.
"""

from fledgling.curate.pipeline import curate
from fledgling.curate.registry import Dataset, list_datasets

__all__ = ["Dataset", "curate", "list_datasets"]
