"""infra/progress.py: a tqdm bar on a terminal, about ten plain lines anywhere else."""
from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import termios
import threading

from infra.progress import progress_meter, tracked

LINE = re.compile(r"^work: +(\d+)% (\d+)/1000 \[")


def plain_output(total: int, updates: list[int], **options) -> str:
    out = io.StringIO()  # not a terminal
    with progress_meter(total, "work", "item", file=out, **options) as meter:
        for count in updates:
            meter.update(count)
    return out.getvalue()


def test_off_a_terminal_a_plain_line_every_tenth_and_no_carriage_return():
    text = plain_output(1000, [1] * 1000)
    assert "\r" not in text
    lines = text.splitlines()
    assert [int(LINE.match(line).group(2)) for line in lines] == list(range(100, 1001, 100))
    assert lines[-1].startswith("work: 100% 1000/1000")


def test_a_jump_over_several_tenths_is_one_line_and_the_end_always_gets_one():
    lines = plain_output(1000, [350, 10, 5]).splitlines()
    # 350 passes three tenths at once; 360 is short of 400; the end (365) is printed on close
    assert [int(LINE.match(line).group(2)) for line in lines] == [350, 365]


def test_more_work_than_announced_is_counted_without_a_percentage():
    lines = plain_output(100, [60, 60]).splitlines()
    assert lines[0].startswith("work:  60% 60/100")
    assert lines[-1].startswith("work: 120 [")


def test_byte_counts_are_scaled_and_updates_from_threads_all_count():
    out = io.StringIO()
    with progress_meter(8 * 2**20, "upload", "B", unit_scale=True, unit_divisor=1024,
                        file=out) as meter:
        threads = [threading.Thread(target=lambda: [meter.update(1024) for _ in range(1024)])
                   for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    lines = out.getvalue().splitlines()
    assert meter.n == 8 * 2**20
    assert 1 <= len(lines) <= 10 and lines[-1].startswith("upload: 100% 8.00M/8.00M")


def test_tracked_yields_every_item_and_counts_it():
    out = io.StringIO()
    assert list(tracked(range(20), "loop", "step", file=out)) == list(range(20))
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("loop: 100% 20/20")


def test_disabled_or_no_work_prints_nothing():
    assert plain_output(1000, [1] * 1000, disable=True) == ""
    assert plain_output(0, []) == ""


def test_on_a_terminal_a_bar_is_drawn_in_place():
    main, secondary = pty.openpty()
    # a terminal 100 columns wide (tqdm draws nothing on a terminal of no width)
    fcntl.ioctl(main, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with os.fdopen(secondary, "w") as terminal:
        with progress_meter(50, "work", "item", file=terminal) as meter:
            for _ in range(50):
                meter.update(1)
    drawn = b""
    while select.select([main], [], [], 0.5)[0]:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(main)
    text = drawn.decode()
    assert "\r" in text                       # redrawn in place
    assert "█" in text or "#" in text         # with a bar
    assert "50/50" in text
