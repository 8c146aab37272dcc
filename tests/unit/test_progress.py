"""The progress hook: per-file events, the run report the CLI prints, the factory switch."""

from __future__ import annotations

import io
import threading

from pos3lite import progress
from pos3lite.progress import NullProgress, RunReport, file_done, format_bytes, make_progress


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_format_bytes_table() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1024, 1536, 5 * 2**20, 3 * 2**30)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]


def test_run_report_counts_files_bytes_and_deletes_and_prints_lines() -> None:
    out = io.StringIO()
    clock = _Clock()
    report = RunReport(bar=False, verbose=True, stream=out, clock=clock)
    with progress.use_factory(report.factory):
        a = make_progress(True, 3000, "Downloading s3://b/p")
        b = make_progress(True, 0, "Downloading s3://b/q")
    a.update(2000)
    a.update(-500)  # a retried part rewinds
    a.update(1500)
    file_done(a, "download", "s3://b/p/x", "/tmp/x")
    file_done(b, "delete", "/tmp/old")
    clock.now += 2.0
    assert (report.files, report.deletes, report.bytes) == (1, 1, 3000)
    assert out.getvalue().splitlines() == ["download: s3://b/p/x to /tmp/x", "delete: /tmp/old"]
    assert report.summary() == "1 file, 2.9 KiB in 2.00 s (1.5 KiB/s), 1 deleted"


def test_quiet_report_prints_nothing_but_still_counts() -> None:
    out = io.StringIO()
    report = RunReport(bar=False, verbose=False, stream=out)
    part = report.factory(True, 10, "Uploading s3://b/k")
    part.update(10)
    file_done(part, "upload", "/a", "s3://b/k")
    report.close()
    assert out.getvalue() == ""
    assert report.files == 1 and report.bytes == 10


def test_bar_shows_bytes_and_files_and_stays() -> None:
    out = io.StringIO()
    report = RunReport(bar=True, verbose=False, stream=out)
    part = report.factory(True, 2048, "Uploading s3://b/k")
    part.update(2048)
    file_done(part, "upload", "/a", "s3://b/k")
    part.close()  # one transfer's end does not end the run's bar
    report.close()
    final = out.getvalue().split("\r")[-1]
    assert "2.00k/2.00k" in final and "1 files" in final and "100%" in final
    assert out.getvalue().endswith("\n")  # left on screen


def test_counts_are_thread_safe() -> None:
    report = RunReport(bar=False, verbose=False, stream=io.StringIO())
    part = report.factory(True, 8000, "x")

    def work() -> None:
        for _ in range(1000):
            part.update(1)
            file_done(part, "upload", "a", "b")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (report.bytes, report.files) == (8000, 8000)


def test_without_a_factory_plain_progress_objects_ignore_file_events() -> None:
    p = make_progress(False, 10, "x")
    assert isinstance(p, NullProgress)
    file_done(p, "download", "s3://b/k", "/x")  # no file_done method: nothing happens
    assert progress._FACTORY is None


def test_a_streamed_transfer_grows_the_bar_total_as_copies_are_planned() -> None:
    out = io.StringIO()
    report = RunReport(bar=True, verbose=False, stream=out)
    part = report.factory(True, 0, "Downloading s3://b/p")  # the total is not known yet
    progress.add_total(part, 1024)
    progress.add_total(part, 1024)
    part.update(2048)
    report.close()
    final = out.getvalue().split("\r")[-1]
    assert "2.00k/2.00k" in final and "100%" in final


def test_add_total_grows_a_tqdm_bar_and_ignores_plain_progress() -> None:
    bar = make_progress(True, 0, "Downloading", grows=True)
    assert isinstance(bar, progress.TqdmProgress)
    progress.add_total(bar, 10)
    progress.add_total(bar, 5)
    assert bar._bar.total == 15
    bar.close()
    assert isinstance(make_progress(True, 0, "Downloading"), NullProgress)
    progress.add_total(NullProgress(), 10)  # no add_total: ignored
