"""What a job run by `ix` prints on the terminal: our progress lines, and one line per failure.

Dagster's own console logger prints every failed step's stack trace, several screens that bury
the one sentence `ix` ends with. The traces are not lost: they stay in the run's event log,
which the UI shows (`dagster dev`, Runs, the run's id).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import dagster as dg
from dagster._utils.error import SerializableErrorInfo


def innermost_error(error: SerializableErrorInfo) -> str:
    """The last line of the innermost cause: what went wrong, not where Dagster caught it
    (Dagster wraps the op's exception in errors that say only that a step failed)."""
    while error.cause is not None:
        error = error.cause
    if error.cls_name == "ChildProcessCrashException":
        # How Dagster reports a step process that died (kill -9, out of memory): no message.
        return "the step's process died before it finished (killed, out of memory or crashed)"
    lines = error.message.strip().splitlines()
    return lines[-1] if lines else error.cls_name or "an error"


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        meta = getattr(record, "dagster_meta", None)
        if not isinstance(meta, dict):
            return f"{when} {record.getMessage()}"
        event = meta.get("dagster_event")
        error = getattr(getattr(event, "event_specific_data", None), "error", None)
        where = meta.get("step_key") or meta.get("job_name") or "run"
        if event is not None and event.is_run_failure:
            return (
                f"{when} {where} - run {meta.get('run_id')} failed; its stack traces are in the "
                "run's log in the Dagster UI"
            )
        if isinstance(error, SerializableErrorInfo):
            return f"{when} {where} - failed: {innermost_error(error)}"
        return f"{when} {where} - {meta.get('orig_message')}"


@dg.logger(
    config_schema={"log_level": dg.Field(str, is_required=False, default_value="INFO")},
    description="The `ix` command's terminal: progress lines, one line per failure.",
)
def ix_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    # A logger of our own, not registered in `logging`'s tree, so nothing else writes to it.
    log = logging.Logger("ix_console", level=init_context.logger_config["log_level"].upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter())
    log.addHandler(handler)
    return log
