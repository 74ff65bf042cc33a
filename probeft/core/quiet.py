"""Silencing transformers' loading chatter: the one place that knows which log records to drop.

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["quiet_transformers"]


class _DropLoadReport(logging.Filter):
    """Drops transformers' LOAD REPORT tables and its tied-weights complaint about checkpoints without an MLM head
    (we check the loading info ourselves and raise clear errors)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return "LOAD REPORT" not in message and "checkpoint seem corrupted" not in message


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence LOAD REPORT tables and progress bars while loading/saving.

    A filter, not a higher log level: transformers 5 runs an extra tensor-parallel check (with its own warning)
    whenever the modeling_utils logger level is >= WARNING.
    """
    from transformers.utils import logging as hf_logging

    loggers = [logging.getLogger(n) for n in ("transformers.modeling_utils", "transformers.utils.loading_report")]
    report_filter = _DropLoadReport()
    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    for lg in loggers:
        lg.addFilter(report_filter)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(report_filter)
        if bars_were_enabled:
            hf_logging.enable_progress_bar()
