"""ParityBench: score any model on a dataset split against the task's references."""
