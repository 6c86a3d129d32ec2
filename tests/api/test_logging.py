"""A server's log is one JSON object per line, third-party warnings included."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
from hanseek.api.logging import configure_logging
configure_logging(secrets=["sekrit"])
import logging
from transformers.utils import logging as hf_logging
hf_logging.get_logger("transformers.tokenization_utils_base").warning("a long text; key sekrit")
logging.getLogger("hanseek.test").info("hello")
print(hf_logging.is_progress_bar_enabled())
"""


def test_transformers_warnings_are_json_and_its_progress_bars_are_off() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    )
    assert run.stdout.strip() == "False"
    lines = [json.loads(line) for line in run.stderr.splitlines()]  # every line parses
    assert [(r["logger"], r["level"]) for r in lines] == [
        ("transformers.tokenization_utils_base", "WARNING"),
        ("hanseek.test", "INFO"),
    ]
    assert lines[0]["msg"] == "a long text; key ***"  # secrets are masked there too
