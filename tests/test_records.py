"""Atomic writes, the records store (round trip, crash recovery, corruption) and JSON files."""

from __future__ import annotations

import json
import os
import stat

import pytest

import benchmark.records as records_module
from benchmark.errors import DataError
from benchmark.records import RecordStore, read_json, record_key, write_atomic, write_json


def rec(index, method="telea", mask="lines", status="ok", **extra):
    return {"method": method, "mask": mask, "index": index, "status": status, **extra}


# -- write_atomic ---------------------------------------------------------------------------------
def test_write_atomic_writes_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "leaderboard.md"
    write_atomic(target, "first\n")
    write_atomic(target, "second ±\n")
    assert target.read_text(encoding="utf-8") == "second ±\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["leaderboard.md"]


def test_write_atomic_failure_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    write_atomic(target, '{"old": true}\n')

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(records_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, '{"new": true, "padding": "' + "x" * 100_000 + '"}\n')
    assert target.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # temp file removed


def test_write_atomic_interrupted_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    write_atomic(target, "old\n")
    real_fsync = os.fsync

    def interrupted_fsync(fd):
        real_fsync(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(records_module.os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_write_atomic_gives_the_same_permissions_as_a_plain_write(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = tmp_path / "atomic.txt"
    write_atomic(atomic, "x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


# -- JSON -----------------------------------------------------------------------------------------
def test_write_json_stores_nan_and_inf_as_null(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"a": float("nan"), "b": [1.5, float("inf")], "c": {"d": -float("inf")}})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": {"d": None}}
    assert read_json(path) == {"a": None, "b": [1.5, None], "c": {"d": None}}


def test_read_json_missing_file_names_it(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(DataError, match="does not exist") as info:
        read_json(path, "run file")
    assert str(path) in str(info.value) and "run file" in str(info.value)


@pytest.mark.parametrize("content", [b'{"a": 1', b"", b"\xff\xfe garbage", b"{'a': 1}"])
def test_read_json_corrupt_file_names_it(tmp_path, content):
    path = tmp_path / "run.json"
    path.write_bytes(content)
    with pytest.raises(DataError, match="not valid JSON") as info:
        read_json(path, "run file")
    assert str(path) in str(info.value)
    assert info.value.exit_code == 1


# -- RecordStore ----------------------------------------------------------------------------------
def test_record_store_round_trip(tmp_path):
    path = tmp_path / "records.jsonl"
    store = RecordStore(path)
    assert len(store) == 0 and not path.exists()
    batch = [rec(i, psnr=30.0 + i, seconds=0.01) for i in range(3)]
    store.append(batch)
    store.append([rec(0, mask="square", status="failed: RuntimeError: boom")])
    assert len(store) == 4

    reopened = RecordStore(path)
    assert len(reopened) == 4
    assert sorted(map(record_key, reopened), key=str) == sorted(map(record_key, store), key=str)
    assert reopened.get(("telea", "", "lines", 2))["psnr"] == 32.0
    assert ("telea", "", "square", 0) in reopened
    assert reopened.get(("telea", "", "square", 0))["status"].startswith("failed")
    assert reopened.get(("ns", "", "lines", 0)) is None


def test_record_store_stores_nan_as_null(tmp_path):
    path = tmp_path / "records.jsonl"
    RecordStore(path).append([rec(0, hole_psnr=float("nan"), psnr=float("inf"))])
    line = path.read_text()
    assert "NaN" not in line and "Infinity" not in line
    loaded = RecordStore(path, truncate=False).get(("telea", "", "lines", 0))  # a reader
    assert loaded["hole_psnr"] is None and loaded["psnr"] is None
    assert RecordStore(path).get(("telea", "", "lines", 0)) is None  # a run recomputes it


def test_record_store_writes_finite_records_as_plain_json_lines(tmp_path):
    path = tmp_path / "records.jsonl"
    batch = [rec(0, psnr=31.25, seconds=0.5), rec(1, hole_psnr=-float("inf"), psnr=1e-320)]
    RecordStore(path).append(batch)
    lines = path.read_text().splitlines()
    assert lines[0] == json.dumps(batch[0])
    assert json.loads(lines[1]) == {**batch[1], "hole_psnr": None}


def test_record_store_fsyncs_at_most_once_per_interval_and_on_sync(tmp_path, monkeypatch):
    """Every batch is written through to the OS at once; fsync is grouped (2 ms per call)."""
    synced = []
    monkeypatch.setattr(records_module.os, "fsync", lambda fd: synced.append(fd))
    clock = iter([100.0, 100.0, 100.2, 100.9, 101.1, 101.1, 101.5, 101.5]).__next__
    monkeypatch.setattr(records_module.time, "monotonic", clock)
    path = tmp_path / "records.jsonl"
    store = RecordStore(path)
    store.append([rec(0)])  # first append: fsync (t = 100.0)
    store.append([rec(1)])  # 0.2 s later: written, not synced
    assert len(path.read_text().splitlines()) == 2  # already in the file for any reader
    store.append([rec(2)])  # 0.9 s: not synced
    store.append([rec(3)])  # 1.1 s: fsync
    assert len(synced) == 2
    store.append([rec(4)])  # 1.5 s: not synced
    store.sync()
    assert len(synced) == 3
    store.sync()  # nothing new since: no call
    assert len(synced) == 3


def test_a_run_ends_with_its_records_synced(tmp_path, monkeypatch):
    from benchmark.run.config import RunConfig
    from benchmark.run.runner import run_benchmark

    calls = []
    real_sync = RecordStore.sync
    monkeypatch.setattr(RecordStore, "sync", lambda self: (calls.append(1), real_sync(self)))
    out = str(tmp_path / "run")
    run_benchmark(
        RunConfig(methods=["mean"], masks=["square"], limit=4, workers=1, out=out, progress=False)
    )
    assert calls == [1]


def test_later_records_replace_earlier_ones(tmp_path):
    path = tmp_path / "records.jsonl"
    store = RecordStore(path)
    store.append([rec(0, status="failed: X")])
    store.append([rec(0, psnr=31.0)])
    assert store.get(("telea", "", "lines", 0))["status"] == "ok"
    assert RecordStore(path).get(("telea", "", "lines", 0))["psnr"] == 31.0
    assert len(RecordStore(path)) == 1


def test_fingerprint_is_part_of_the_key(tmp_path):
    path = tmp_path / "records.jsonl"
    RecordStore(path).append([rec(0, fingerprint="w1"), rec(0, fingerprint="w2")])
    store = RecordStore(path)
    assert len(store) == 2
    assert ("telea", "w1", "lines", 0) in store and ("telea", "", "lines", 0) not in store


def test_partial_last_line_is_dropped_and_file_truncated(tmp_path):
    path = tmp_path / "records.jsonl"
    RecordStore(path).append([rec(0), rec(1)])
    good = path.read_bytes()
    path.write_bytes(good + b'{"method": "telea", "mask": "lines", "ind')  # crash mid-write

    store = RecordStore(path)
    assert len(store) == 2
    assert path.read_bytes() == good  # truncated back to the last whole line
    store.append([rec(2)])
    reopened = RecordStore(path)
    assert len(reopened) == 3 and ("telea", "", "lines", 2) in reopened
    assert all(json.loads(line) for line in path.read_text().splitlines())


@pytest.mark.parametrize("line_number", [1, 2, 3])
def test_corrupt_line_raises_data_error_naming_file_and_line(tmp_path, line_number):
    path = tmp_path / "records.jsonl"
    lines = [json.dumps(rec(i)) for i in range(4)]
    lines[line_number - 1] = '{"method": "telea", garbage'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        RecordStore(path)
    message = str(info.value)
    assert str(path) in message and f"line {line_number}" in message


@pytest.mark.parametrize(
    "line", ['["a list"]', '{"method": "telea", "mask": "lines", "index": 0}', "42"]
)
def test_wrong_record_shape_raises_data_error(tmp_path, line):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(rec(0)) + "\n" + line + "\n")
    with pytest.raises(DataError, match="line 2"):
        RecordStore(path)


@pytest.mark.parametrize("index", ['"seven"', "null"])
def test_non_integer_index_raises_data_error(tmp_path, index):
    path = tmp_path / "records.jsonl"
    path.write_text(
        json.dumps(rec(0)) + "\n"
        f'{{"method": "telea", "mask": "lines", "index": {index}, "status": "ok"}}\n'
    )
    with pytest.raises(DataError, match="line 2"):
        RecordStore(path)


def test_blank_lines_are_skipped_and_numbering_counts_them(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(rec(0)) + "\n\n" + json.dumps(rec(1)) + "\n")
    assert len(RecordStore(path)) == 2
    path.write_text(json.dumps(rec(0)) + "\n\nnot json\n")
    with pytest.raises(DataError, match="line 3"):
        RecordStore(path)
