"""Logging handlers, set once by the CLI: stderr, journald-friendly."""

from __future__ import annotations

import json
import logging
import os
import sys

NOISY = ("faiss", "urllib3", "PIL", "matplotlib", "multipart", "uvicorn.error")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send logs to stderr; under journald (JOURNAL_STREAM set) leave out the time, journald adds it."""
    handler = logging.StreamHandler(sys.stderr)
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
