"""Logging handlers, set by the CLI: stderr, journald-friendly.

The level: --log-level when the operator gives it, else (run and sync) the config's logging.level, else INFO.
main() sets handlers for every command first, from the flag or INFO; run and sync set them again from
their config (level and format), and must not undo an explicit --log-level while doing so.
"""

from __future__ import annotations

import json
import logging
import os
import sys

DEFAULT_LEVEL = "INFO"
NOISY = ("faiss", "urllib3", "PIL", "matplotlib", "multipart", "uvicorn.error")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes, not the one at set-up (as logging's own last-resort
    handler does): a caller that swaps stderr (pytest's capture, per test) must not leave the root logger writing to
    a closed stream ('--- Logging error ---' and a traceback for every later record)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(level: str = DEFAULT_LEVEL, fmt: str = "text") -> None:
    """Send logs to stderr; under journald (JOURNAL_STREAM set) leave out the time, journald adds it."""
    handler = StderrHandler()
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # third-party chatter (faiss's loader announcing AVX512, urllib3's retries) is not for operators unless asked for
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    if level != "DEBUG":
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # read when cv2 is first imported: V4L2 probing warnings


def setup_from_config(flag: str | None, configured: str, fmt: str) -> None:
    """The config's logging (run, sync), its level overridden by --log-level when given (`flag`, None when not)."""
    level = flag or configured
    setup_logging(level, fmt)
    log = logging.getLogger(__name__)
    log.debug("log level %s, from %s (logging.level in the config: %s)", level, "--log-level" if flag else "the config", configured)
