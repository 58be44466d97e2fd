"""Jobs and the autopilot: the loop's steps run in worker processes, started from the dashboard,
its JSON API or the CLI, and an autopilot that drives a task's rollout on evidence.

    kinds.py      what each job kind runs (curate, train, eval, report, calibrate, publish,
                  autopilot) and its arguments
    runner.py     start (one running job per task and kind), cancel, reap dead workers
    worker.py     `python -m fledgling.jobs.worker JOB_ID`: one job in its own process
    autopilot.py  `fledgling autopilot --task T`: retrain on new traffic, promote stage by stage
                  on a SWAP verdict and a held live gate, roll back on an alarm

It sits above `swap` (it drives the rollout) and below `ui` (the dashboard starts its jobs).
"""
