"""Bad input: a clear error naming the file and the problem, or a report marked partial."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reports import ReportInputError, analyze_cell
from reports.metrics import compute_metrics
from reports.read_cell import load_cell
from reports.synthetic import BASE_NS, NS_PER_S, samples_frame, write_run_json, write_shard
from tests.reports_fixtures.known_cell import ECHO_OK, write_known_cell


def _echo_cell(cell: Path, n: int = 100, **run: object) -> Path:
    """n echo acks of 500 us in a 3 s run, one shard, no server.csv."""
    t = BASE_NS + NS_PER_S + (NS_PER_S // n) * np.arange(n)
    write_shard(cell, samples_frame(t, "ack", "echo", 500.0))
    write_run_json(cell, started_ns=BASE_NS, ended_ns=BASE_NS + 3 * NS_PER_S, **run)
    return cell


def _raises(path: Path, *fragments: str) -> ReportInputError:
    with pytest.raises(ReportInputError) as info:
        analyze_cell(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def test_missing_folder(tmp_path: Path) -> None:
    _raises(tmp_path / "nope", str(tmp_path / "nope"), "no such folder")


def test_file_instead_of_folder(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text("{}")
    _raises(path, "run.json", "not a folder")


def test_empty_run_without_shards(tmp_path: Path) -> None:
    write_run_json(tmp_path, started_ns=BASE_NS, ended_ns=BASE_NS + NS_PER_S)
    _raises(tmp_path, str(tmp_path), "no sample shards", "samples-*.parquet")


def test_empty_run_with_empty_shards(tmp_path: Path) -> None:
    write_shard(tmp_path, samples_frame([], "ack", "echo", 0.0))
    write_run_json(tmp_path, started_ns=BASE_NS, ended_ns=BASE_NS + NS_PER_S)
    _raises(tmp_path, "empty run", "hold no rows")


def test_truncated_shard_is_skipped_and_report_partial(tmp_path: Path) -> None:
    cell = write_known_cell(tmp_path / "cell", shards=2)
    shard = sorted(cell.glob("samples-*.parquet"))[1]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    data = load_cell(cell)
    assert data.partial
    assert data.shards_skipped == [shard.name]
    assert any(shard.name in p and "corrupt or truncated" in p for p in data.problems)
    # The figures use exactly the rows of the valid shard.
    valid = pq.read_table(sorted(cell.glob("samples-*.parquet"))[0]).num_rows
    assert len(data.samples) == valid
    summary = analyze_cell(cell)[2]
    assert summary["status"] == "partial" and summary["partial"] is True
    assert summary["samples"]["shards_skipped"] == [shard.name]


def test_corrupt_bytes_inside_a_shard(tmp_path: Path) -> None:
    cell = _echo_cell(tmp_path / "cell")
    shard = next(cell.glob("samples-*.parquet"))
    raw = bytearray(shard.read_bytes())
    raw[4:200] = b"\xff" * 196  # first data pages, footer intact
    shard.write_bytes(bytes(raw))
    _raises(cell, "no usable sample shard", shard.name)


def test_all_shards_corrupt(tmp_path: Path) -> None:
    cell = _echo_cell(tmp_path / "cell")
    shard = next(cell.glob("samples-*.parquet"))
    shard.write_bytes(b"not parquet at all")
    _raises(cell, str(cell), shard.name, "corrupt or truncated")


def _write_table(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_shard_missing_a_column(tmp_path: Path) -> None:
    frame = samples_frame([BASE_NS + NS_PER_S], "ack", "echo", 500.0).drop(columns=["latency_us"])
    _write_table(tmp_path / "samples-w1-0000.parquet", pa.Table.from_pandas(frame, preserve_index=False))
    write_run_json(tmp_path, started_ns=BASE_NS, ended_ns=BASE_NS + 2 * NS_PER_S)
    _raises(tmp_path, "samples-w1-0000.parquet", "missing column(s) latency_us")


def test_shard_with_a_wrong_column_type(tmp_path: Path) -> None:
    frame = samples_frame([BASE_NS + NS_PER_S], "ack", "echo", 500.0)
    frame["latency_us"] = frame["latency_us"].astype(str)
    _write_table(tmp_path / "samples-w1-0000.parquet", pa.Table.from_pandas(frame, preserve_index=False))
    write_run_json(tmp_path, started_ns=BASE_NS, ended_ns=BASE_NS + 2 * NS_PER_S)
    _raises(tmp_path, "samples-w1-0000.parquet", "latency_us is", "expected double")


def test_bad_shard_beside_a_good_one_is_skipped_and_named(tmp_path: Path) -> None:
    cell = _echo_cell(tmp_path / "cell")
    frame = samples_frame([BASE_NS + NS_PER_S], "ack", "echo", 500.0).drop(columns=["ok"])
    _write_table(cell / "samples-w2-0000.parquet", pa.Table.from_pandas(frame, preserve_index=False))
    summary = analyze_cell(cell)[2]
    assert summary["partial"] is True
    assert any("samples-w2-0000.parquet" in p and "missing column(s) ok" in p for p in summary["problems"])
    assert summary["latency"]["echo"]["count"] == 100


def test_nulls_in_a_required_column(tmp_path: Path) -> None:
    frame = samples_frame([BASE_NS + NS_PER_S, BASE_NS + NS_PER_S + 1], "ack", "echo", 500.0)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(table.schema.get_field_index("name"), "name", pa.array(["echo", None]))
    _write_table(tmp_path / "samples-w1-0000.parquet", table)
    write_run_json(tmp_path, started_ns=BASE_NS, ended_ns=BASE_NS + 2 * NS_PER_S)
    _raises(tmp_path, "samples-w1-0000.parquet", "null values", "name (1)")


def test_timestamps_in_seconds_are_refused(tmp_path: Path) -> None:
    write_shard(tmp_path, samples_frame([1_764_000_001], "ack", "echo", 500.0))
    write_run_json(tmp_path, started_ns=BASE_NS, ended_ns=BASE_NS + 2 * NS_PER_S)
    _raises(tmp_path, "samples-w1-0000.parquet", "not epoch nanoseconds")


def test_unknown_kinds_and_broken_latencies_are_dropped_and_counted(tmp_path: Path) -> None:
    cell = _echo_cell(tmp_path / "cell")
    t = [BASE_NS + 2 * NS_PER_S] * 3
    write_shard(cell, samples_frame(t, ["bogus", "ack", "ack"], "echo", [1.0, -5.0, float("inf")]), tag="w2")
    summary = analyze_cell(cell)[2]
    assert summary["partial"] is True
    assert any("1 sample(s) with unknown kind ['bogus']" in p for p in summary["problems"])
    assert any("2 successful sample(s) with a negative or non-finite latency_us" in p for p in summary["problems"])
    assert summary["latency"]["echo"]["count"] == 100
    assert summary["latency"]["echo"]["max_us"] == 500.0


def test_corrupt_run_json(tmp_path: Path) -> None:
    cell = _echo_cell(tmp_path / "cell")
    (cell / "run.json").write_text('{"schema": 1, "started_ns": ')
    _raises(cell, str(cell / "run.json"), "not valid JSON", "line 1")


def test_run_json_field_of_the_wrong_type(tmp_path: Path) -> None:
    cell = _echo_cell(tmp_path / "cell")
    run = json.loads((cell / "run.json").read_text())
    (cell / "run.json").write_text(json.dumps({**run, "started_ns": "yesterday"}))
    _raises(cell, "run.json", "'started_ns' must be an integer")


def test_missing_run_json_gives_a_partial_report(tmp_path: Path) -> None:
    cell = _echo_cell(tmp_path / "cell")
    (cell / "run.json").unlink()
    summary = analyze_cell(cell)[2]
    assert summary["partial"] is True
    assert any("run.json missing" in p for p in summary["problems"])
    assert summary["latency"]["echo"]["count"] == 100


def test_failed_run_is_reported_as_failed(tmp_path: Path) -> None:
    cell = _echo_cell(tmp_path / "cell", status="failed", reason="target died")
    summary = analyze_cell(cell)[2]
    assert summary["status"] == "failed"
    assert any("target died" in p for p in summary["problems"])


def test_run_left_running_is_partial(tmp_path: Path) -> None:
    cell = _echo_cell(tmp_path / "cell", status="running")
    summary = analyze_cell(cell)[2]
    assert summary["status"] == "partial"
    assert any("still says 'running'" in p for p in summary["problems"])


def test_missing_server_csv_gives_a_partial_report(tmp_path: Path) -> None:
    summary = analyze_cell(_echo_cell(tmp_path / "cell"))[2]
    assert summary["partial"] is True
    assert summary["server"] is None
    assert any("server.csv missing" in p for p in summary["problems"])


def test_server_csv_with_wrong_columns(tmp_path: Path) -> None:
    cell = write_known_cell(tmp_path / "cell")
    (cell / "server.csv").write_text("time,cpu,rss\n1,2,3\n")
    summary = analyze_cell(cell)[2]
    assert summary["server"] is None
    assert any("server.csv: missing column(s) t_ns, cpu_user_s, cpu_system_s, rss_bytes" in p
               for p in summary["problems"])


def test_truncated_server_csv_line_is_skipped(tmp_path: Path) -> None:
    cell = write_known_cell(tmp_path / "cell")
    text = (cell / "server.csv").read_text()
    (cell / "server.csv").write_text(text + f"{BASE_NS + 14 * NS_PER_S},7.5,")
    summary = analyze_cell(cell)[2]
    assert summary["partial"] is True
    assert any("skipped 1 malformed or truncated line(s)" in p for p in summary["problems"])
    assert summary["server"]["cpu_s"] == pytest.approx(5.0)


def test_warmup_longer_than_the_run(tmp_path: Path) -> None:
    cell = _echo_cell(tmp_path / "cell")
    # The load is the samples' span: 100 samples 10 ms apart, 1 s.
    with pytest.raises(ReportInputError, match=r"cell: a warm-up of 30 s \(--warmup\) leaves no steady window: "
                                               r"the load ran 1\.000 s"):
        compute_metrics(load_cell(cell), warmup_s=30)
    with pytest.raises(ReportInputError, match="--warmup: must be a number of seconds >= 0"):
        compute_metrics(load_cell(cell), warmup_s=-1)
    # Absurdly long (run.json load.warmup_s = 1e300): the same one-line error, not an overflow.
    with pytest.raises(ReportInputError, match=r"a warm-up of 1e\+300 s \(--warmup\) leaves no steady window"):
        compute_metrics(load_cell(cell), warmup_s=1e300)


def test_valid_folder_has_no_problems(tmp_path: Path) -> None:
    data = load_cell(write_known_cell(tmp_path / "cell"))
    assert data.problems == [] and not data.partial
    assert data.shards_read == 2
    assert int((data.samples["name"] == "echo").sum()) == 50 + ECHO_OK + 4
    assert json.loads((tmp_path / "cell" / "run.json").read_text())["status"] == "ok"
