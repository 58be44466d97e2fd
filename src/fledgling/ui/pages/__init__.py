"""One router per dashboard page; each route calls the library and renders a template."""

from fledgling.ui.pages import (
                                 auth,
                                 compare,
                                 contracts,
                                 datasets,
                                 jobs,
                                 models,
                                 overview,
                                 reports,
                                 rollout,
                                 traces,
                                 training,
)

ROUTERS = [auth.router, overview.router, traces.router, contracts.router, datasets.router,
           compare.router, reports.router, training.router, jobs.router, models.router, rollout.router]
