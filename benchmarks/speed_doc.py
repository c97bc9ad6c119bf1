"""Rewrite one benchmark's section of docs/SPEED.md with its latest figures.

A section lies between two markers, `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`, and holds
what the benchmark measures, the command, a table of the latest figures, the commit and the
machine. A benchmark run with `--write-docs` replaces its own section with a fresh one, so the
file always shows the latest measurement of each benchmark and never a history (the git log of
docs/SPEED.md is the history). A section not in the file yet is appended at its end.

    import speed_doc   # from a script in benchmarks/
    speed_doc.write("pipeline-anchor", title=..., measures=..., command=..., header=[...], rows=[[...]])
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEED_DOC = REPO / "docs" / "SPEED.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def replace_section(document: str, name: str, body: str) -> str:
    """`document` with the text between NAME's markers replaced by `body` (markers kept); a
    document without the markers gets the section appended. Anything else about the markers
    (one without the other, twice, in the wrong order) is a ValueError: a section is never
    guessed at."""
    start, end = markers(name)
    starts, ends = document.count(start), document.count(end)
    section = f"{start}\n{body.strip()}\n{end}"
    if starts == ends == 0:
        return document.rstrip("\n") + "\n\n" + section + "\n"
    if starts != 1 or ends != 1:
        raise ValueError(f"docs/SPEED.md: the section {name!r} needs exactly one {start} and one "
                         f"{end} (found {starts} and {ends}); fix the file by hand")
    head, rest = document.split(start)
    if end not in rest:
        raise ValueError(f"docs/SPEED.md: {end} comes before {start}; fix the file by hand")
    _, tail = rest.split(end)
    return head + section + tail


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; columns whose every cell is a number are right-aligned."""
    def numeric(column: int) -> bool:
        cells = [str(row[column]).rstrip("x").replace(",", "") for row in rows]
        return bool(cells) and all(_is_number(cell) for cell in cells)

    aligns = ["---:" if numeric(i) else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def commit(tree: Path = REPO) -> str:
    """The tree's short commit, marked when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        return f"unknown ({tree} is not a git tree)"
    return head + (" with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> str:
    """CPU model, cores, memory and kernel: what the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    memory = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 2**20:.0f} GiB RAM"
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}"


def render(title: str, measures: str, command: str, header: Sequence[str],
           rows: Sequence[Sequence[object]], summary: str = "", tree: Path = REPO,
           measured: str | None = None) -> str:
    """A section's body: title, what it measures, the command, the table, then where and when
    (`measured`: the commit the figures are of, when not the tree's own, e.g. a fresh clone's)."""
    parts = [f"### {title}", measures.strip(), f"```\n{command.strip()}\n```", table(header, rows)]
    if summary:
        parts.append(summary.strip())
    parts.append(f"Commit {measured or commit(tree)}, {datetime.date.today().isoformat()}, on {machine()}.")
    return "\n\n".join(parts)


def write(name: str, title: str, measures: str, command: str, header: Sequence[str],
          rows: Sequence[Sequence[object]], summary: str = "", path: Path = SPEED_DOC,
          measured: str | None = None) -> None:
    """Replace NAME's section of `path` (docs/SPEED.md) with the latest figures (`measured`:
    as `render`)."""
    body = render(title, measures, command, header, rows, summary, measured=measured)
    document = path.read_text() if path.exists() else "# Speed\n"
    path.write_text(replace_section(document, name, body))
