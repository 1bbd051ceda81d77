"""Per-service log files: stamped lines, rotation, reading across rotations, following through rotation and truncation."""
from __future__ import annotations

from sensor_manager.runtimes.logfiles import Follower, LogWriter, read_lines, split_line


def test_lines_are_stamped_and_partial_lines_wait_for_their_end(tmp_path):
    writer = LogWriter(tmp_path / "svc.log")
    writer.write_output(b"one\ntw")
    writer.write_output(b"o\r\nthree")
    writer.close()
    lines = read_lines(tmp_path / "svc.log")
    assert [line.text for line in lines] == ["one", "two", "three"]
    assert all(line.timestamp and line.timestamp.endswith("Z") for line in lines)
    assert split_line("not stamped at all") == (None, "not stamped at all")


def test_rotation_keeps_backups_and_reading_spans_them(tmp_path):
    writer = LogWriter(tmp_path / "svc.log", max_bytes=200, backups=3)
    for index in range(40):
        writer.write_line(f"line {index}")
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["svc.log", "svc.log.1", "svc.log.2", "svc.log.3"]
    everything = [line.text for line in read_lines(tmp_path / "svc.log")]
    assert everything == [f"line {i}" for i in range(40 - len(everything), 40)]  # oldest beyond 3 backups dropped
    assert [line.text for line in read_lines(tmp_path / "svc.log", tail=3)] == ["line 37", "line 38", "line 39"]
    assert read_lines(tmp_path / "svc.log", tail=0) == []


def test_follower_keeps_reading_after_rotation_and_truncation(tmp_path):
    path = tmp_path / "svc.log"
    writer = LogWriter(path, max_bytes=120, backups=1)
    writer.write_line("before following")
    follower = Follower(path)
    assert follower.read_new() == []
    seen = []
    for index in range(10):  # rotates several times
        writer.write_line(f"after {index}")
        seen += [line.text for line in follower.read_new()]
    assert seen == [f"after {i}" for i in range(10)]
    writer.close()
    path.write_text("")  # truncated
    with open(path, "a") as handle:
        handle.write("2025-01-01T00:00:00.000000Z fresh\n")
    assert [line.text for line in follower.read_new()] == ["fresh"]
    follower.close()


def test_follower_of_a_file_that_appears_later_reads_it_from_the_start(tmp_path):
    follower = Follower(tmp_path / "later.log")
    assert follower.read_new() == []
    (tmp_path / "later.log").write_text("2025-01-01T00:00:00.000000Z hello\n")
    assert [line.text for line in follower.read_new()] == ["hello"]
