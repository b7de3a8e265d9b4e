"""Log records as JSON lines: one object per line with time, level, logger and message, and the context a
log call passes with extra= (job_id, agency_id, …) when the record has it. PORTAL_LOG_FORMAT=text keeps
plain lines (portal/settings.py wires both).

Only the context fields named here are written, whatever else a record carries: a stray extra= must not
put a photo or a search's justification into the log.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

CONTEXT_FIELDS = ("job_id", "job_ids", "agency_id", "report_id", "attempt", "status_code")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message or a traceback are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
