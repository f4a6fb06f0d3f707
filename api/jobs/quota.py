"""The `quota` job kind: quota deployment (optimizer.quota_deploy) over inline tables."""

from __future__ import annotations

from api.jobs.inputs import JobInputs
from api.jobs.kinds import JobOutcome, SolveControls, table_result
from optimizer.errors import InputError, Issue
from optimizer.io import model_from_mapping
from optimizer.quota_deploy import QuotaSettings, deploy

# The table each method reads, and the columns that must be there (rows are checked when the
# job runs, by optimizer.quota).
NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "top-down": ("territories", ("territory_id", "potential")),
    "fair": ("territories", ("territory_id", "potential")),
    "bottom-up": ("submissions", ("submitted",)),
    "derived": ("territories", ("territory_id",)),
}


class QuotaRunner:
    """Top-down, fair (LP), bottom-up or derived quotas; `scenario` holds QuotaSettings and
    `data` the territories, submissions or coverage records."""

    default_time_limit = 30.0  # the fairness LP's limit; the other methods are closed-form

    def settings(self, inputs: JobInputs) -> QuotaSettings:
        issues: list[Issue] = []
        try:
            settings = model_from_mapping(QuotaSettings, inputs.scenario, "scenario")
        except InputError as exc:
            issues += exc.issues
            settings = None
        method = settings.method if settings else str(inputs.scenario.get("method", ""))
        if method in NEEDS:
            name, columns = NEEDS[method]
            table = inputs.tables.get(name)
            if table is None or len(table) == 0:
                issues.append(Issue(f"data.{name}", None, None,
                                    f"method {method} needs {name} records (inline data)"))
            else:
                issues += [Issue(name, None, c, "required column is missing")
                           for c in columns if c not in table.columns]
        if issues or settings is None:
            raise InputError(issues)
        return settings

    def check(self, inputs: JobInputs) -> None:
        self.settings(inputs)

    def run(self, inputs: JobInputs, controls: SolveControls) -> JobOutcome:  # noqa: ARG002
        settings = self.settings(inputs)
        done = deploy(settings, inputs.tables)
        result = table_result(done.summary, done.tables, done.main)
        return JobOutcome(result=result, status=str(done.summary["status"]))
