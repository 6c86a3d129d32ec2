"""Run every leaf `hanseek` command with hostile arguments and list the runs that end in a traceback.

usage: python scripts/sweep_cli.py [SECONDS_PER_RUN]   (default 20)

Each run gets its own empty data dir (HANSEEK_DATA_DIR under a temporary folder) and runs in that
folder; the missing paths point inside it too. So whatever a command writes (`--out -1`, `db backup
MISSING`) lands there and is removed at the end. The variants:
- no arguments (skipped for the commands that would start a long job: training, evaluation, model
  preparation, re-embedding);
- every positional argument set to a missing file, then to '';
- with the positionals missing, each option in turn set to -1 and to ''.
`serve` and `demo` are not run. A run still going after SECONDS_PER_RUN is stopped and counted as
accepted (it was doing work), not as a failure. Prints one JSON line with the counts, then each
failure. Exit code 1 if any run printed a traceback or died of a signal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import typer

from hanseek.cli import app

LONG_JOBS = {"eval", "experiment", "prepare", "train-ranker", "reembed", "reindex", "export-onnx"}
SKIPPED_GROUPS = {"serve", "demo"}


def leaves(command: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    if hasattr(command, "commands"):
        return [leaf for name, sub in command.commands.items() for leaf in leaves(sub, [*path, name])]
    return [(path, command)]


def variants(path: list[str], command: Any, missing_file: str) -> list[list[str]]:
    args = [p for p in command.params if type(p).__name__.endswith("Argument")]
    opts = [p for p in command.params if type(p).__name__.endswith("Option") and not p.is_flag]
    opts = [p for p in opts if p.name != "help"]
    long_job = path[0] in ("train", "eval") or path[-1] in LONG_JOBS
    out: list[list[str]] = [] if long_job else [[]]
    missing = [missing_file] * len(args)
    if args:
        out += [missing, [""] * len(args)]
    for opt in opts:
        out += [[*missing, opt.opts[0], v] for v in ("-1", "")]
    return out


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    hanseek = str(Path(sys.executable).with_name("hanseek"))
    commands = [leaf for leaf in leaves(typer.main.get_command(app), []) if leaf[0][0] not in SKIPPED_GROUPS]
    runs, stopped, failures = 0, 0, []
    with tempfile.TemporaryDirectory(prefix="hanseek-sweep-") as tmp:
        for path, command in commands:
            # Inside the temporary folder: a command that writes there (`db backup MISSING`)
            # leaves nothing behind.
            for args in variants(path, command, str(Path(tmp) / "missing" / "x.txt")):
                runs += 1
                env = dict(os.environ, HANSEEK_DATA_DIR=str(Path(tmp) / f"data{runs}"), COLUMNS="200")
                try:
                    argv = [hanseek, *path, *args]
                    r = subprocess.run(
                        argv, capture_output=True, text=True, timeout=seconds, env=env, cwd=tmp
                    )
                except subprocess.TimeoutExpired:
                    stopped += 1
                    continue
                output = r.stdout + r.stderr
                if "Traceback" in output or r.returncode < 0:
                    failures.append((path, args, r.returncode, output[-400:]))
    print(json.dumps({"commands": len(commands), "runs": runs, "stopped_at_limit": stopped,
                      "tracebacks": len(failures)}))  # fmt: skip
    for f in failures:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
