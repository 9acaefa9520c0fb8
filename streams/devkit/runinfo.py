"""What every measuring tool (bench, soak) records about its run: the tree and /proc CPU,
and the one way a run's row joins its table in docs/benchmarks.md."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def git_commit() -> str:
    """The measured tree: short HEAD, ``-dirty`` with uncommitted tracked changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return (sha or "unknown") + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def proc_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads), in seconds; None if it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def add_table_row(path: Path, row: str, table_start: str, section: str) -> None:
    """``row`` as the last row of the table whose header line starts ``table_start``;
    ``section`` (heading, prose, header) is appended first when the table is missing."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if table_start not in text:
        text = text.rstrip("\n") + "\n\n" + section
    lines = text.splitlines()
    end = next(i for i, ln in enumerate(lines) if ln.startswith(table_start)) + 1
    while end + 1 < len(lines) and lines[end + 1].startswith("|"):
        end += 1
    lines.insert(end + 1, row)
    path.write_text("\n".join(lines) + "\n")
