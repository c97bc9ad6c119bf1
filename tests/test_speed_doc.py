"""benchmarks/speed_doc.py: a benchmark's section of docs/SPEED.md is replaced, never appended to."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("speed_doc", REPO / "benchmarks" / "speed_doc.py")
speed_doc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(speed_doc)

DOC = """# Speed

Intro.

<!-- bench:pipeline -->
### Old pipeline figures
| round | s |
| ---: | ---: |
| 1 | 99.0 |
<!-- /bench:pipeline -->

<!-- bench:analysis -->
analysis figures stay
<!-- /bench:analysis -->

Outro.
"""


def test_the_section_is_replaced_and_the_rest_kept():
    new = speed_doc.replace_section(DOC, "pipeline", "### New\n| a |\n| --- |\n| 1 |\n")
    assert "Old pipeline figures" not in new and "99.0" not in new
    assert "### New" in new
    start, end = new.index("<!-- bench:pipeline -->"), new.index("<!-- /bench:pipeline -->")
    assert start < new.index("### New") < end
    assert new.split("<!-- bench:pipeline -->")[0] == DOC.split("<!-- bench:pipeline -->")[0]
    assert new.split("<!-- /bench:pipeline -->")[1] == DOC.split("<!-- /bench:pipeline -->")[1]


def test_replacing_twice_gives_one_section_not_two():
    once = speed_doc.replace_section(DOC, "pipeline", "first")
    twice = speed_doc.replace_section(once, "pipeline", "second")
    assert twice.count("<!-- bench:pipeline -->") == 1
    assert "second" in twice and "first" not in twice
    assert speed_doc.replace_section(twice, "pipeline", "second") == twice


def test_a_new_section_is_appended_at_the_end():
    new = speed_doc.replace_section(DOC, "hdfs", "hdfs figures")
    assert new.startswith(DOC.rstrip("\n"))
    assert new.rstrip("\n").endswith("<!-- bench:hdfs -->\nhdfs figures\n<!-- /bench:hdfs -->")


@pytest.mark.parametrize("broken", [
    "<!-- bench:pipeline -->\nno end\n",
    "no start\n<!-- /bench:pipeline -->\n",
    "<!-- /bench:pipeline -->\nswapped\n<!-- bench:pipeline -->\n",
    "<!-- bench:pipeline -->\na\n<!-- /bench:pipeline -->\n<!-- bench:pipeline -->\nb\n<!-- /bench:pipeline -->\n",
])
def test_broken_markers_are_refused_not_guessed(broken):
    with pytest.raises(ValueError, match="pipeline"):
        speed_doc.replace_section(broken, "pipeline", "new")


def test_table_right_aligns_number_columns():
    text = speed_doc.table(["round", "ratio", "note"], [[1, "3.50x", "identical"], [2, "1,234.5", "ok"]])
    lines = text.splitlines()
    assert lines[0] == "| round | ratio | note |"
    assert lines[1] == "| ---: | ---: | --- |"
    assert lines[3] == "| 2 | 1,234.5 | ok |"


def test_write_names_the_commit_and_the_machine(tmp_path):
    doc = tmp_path / "SPEED.md"
    doc.write_text(DOC)
    speed_doc.write("pipeline", title="Pipeline", measures="What it measures.", command="bench --x",
                    header=["round", "s"], rows=[[1, "42.0"]], path=doc)
    text = doc.read_text()
    section = text.split("<!-- bench:pipeline -->")[1].split("<!-- /bench:pipeline -->")[0]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert f"Commit {head}" in section
    assert "cores" in section and "| 1 | 42.0 |" in section and "bench --x" in section
    assert "analysis figures stay" in text and "Outro." in text


def test_write_names_the_measured_commit_when_it_is_not_the_trees(tmp_path):
    doc = tmp_path / "SPEED.md"
    doc.write_text(DOC)
    speed_doc.write("pipeline", title="Pipeline", measures="What it measures.", command="bench --x",
                    header=["round", "s"], rows=[[1, "42.0"]], path=doc, measured="abc1234 (a clone)")
    assert "Commit abc1234 (a clone), " in doc.read_text()


def test_bench_pipeline_offers_the_flag():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_pipeline.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--write-docs" in out
