"""Delivery of change notifications in Dagster: a sensor per source, and a short pass at the end of extraction runs.

The outbox and its delivery are notify.py's (no Dagster there). Here only: when a pass runs, and where its outcome
shows in Dagit. The sensor's tick message says what was sent and what failed (a failed delivery stays queued and
the next tick retries it); an extraction run that queued changes delivers them at its end with a short deadline,
after its push, logging the outcome (a failure there is a warning in the run's log, never the run's failure).
"""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from metadata_assets import notify
from metadata_assets.defs.source_setup import SourceSetup

SENSOR_DEADLINE_S = 20  # a sensor tick must end well within Dagster's 60 s
AFTER_RUN_DEADLINE_S = 5


def build_notification_sensor(setup: SourceSetup, minimum_interval_seconds: int = 30):
    source, targets = setup.source, list(setup.webhooks)

    @sensor(
        name=f"{source.name}_notification_sensor",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Sends `{source.name}`'s queued schema changes to its webhooks "
            f"({', '.join(t.label for t in targets) or 'none configured'}); a failed delivery stays "
            "queued and is retried at the next tick. Starts no run."
        ),
    )
    def notification_sensor(context: SensorEvaluationContext):
        report = notify.deliver(setup.store.open(), source, targets, deadline_s=SENSOR_DEADLINE_S)
        if not report.ok:
            context.log.warning(report.summary())
        return SkipReason(report.summary())

    return notification_sensor


def deliver_after_run(context, setup: SourceSetup, store) -> None:
    """The extraction run's own pass (see the module's docstring). Never raises."""
    try:
        report = notify.deliver(store, setup.source, list(setup.webhooks), deadline_s=AFTER_RUN_DEADLINE_S)
    except Exception as e:  # the store itself failed: the sensor's next tick tries again
        context.log.warning(
            f"change notifications not delivered ({type(e).__name__}: {e}); the notification sensor retries"
        )
        return
    if report.sent or not report.ok or report.pending:
        (context.log.info if report.ok else context.log.warning)(report.summary())
