"""bulk.py against the stand-in: import validated whole before the first write (dry run,
conflicts, idempotent re-runs, pipes), export planned before the first request and atomic."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from cli_helpers import StoreTables, event

from parlant_supabase_sync import bulk, connect
from parlant_supabase_sync.api import Collection, Connection
from parlant_supabase_sync.errors import TableMissing
from parlant_supabase_sync.local.stack import LocalSupabase


@pytest.fixture
def db(local_supabase: LocalSupabase) -> Iterator[Connection]:
    with connect(url=local_supabase.url, key=local_supabase.secret_key) as connection:
        yield connection


@pytest.fixture
def store(make_store: Callable[[], StoreTables]) -> StoreTables:
    tables = make_store()
    tables.insert_sql("events", [event(i) for i in range(10)])
    return tables


@pytest.fixture
def events(db: Connection, store: StoreTables) -> Collection:
    return db.store(store.prefix).collection("events")


def _writes(stack: LocalSupabase) -> int:
    return stack.requests.count(path_contains="parlant_write")


def _jsonl(path: Path, documents: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    return path


class Recorder:
    """A Progress that records its phases; `stop_after` raises KeyboardInterrupt like Ctrl-C."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.phases: list[tuple[str, int | None, int]] = []
        self.ended = 0
        self._stop_after = stop_after

    def begin(self, label: str, total: int | None) -> None:
        self.phases.append((label, total, 0))

    def advance(self, n: int = 1) -> None:
        label, total, done = self.phases[-1]
        self.phases[-1] = (label, total, done + n)
        if self._stop_after is not None and done + n >= self._stop_after:
            raise KeyboardInterrupt

    def end(self) -> None:
        self.ended += 1


# --- import --------------------------------------------------------------------------------


def test_a_bad_line_701_of_1200_writes_nothing_and_names_the_line(
    events: Collection, local_supabase: LocalSupabase, tmp_path: Path
) -> None:
    lines = [json.dumps(event(100 + i)) for i in range(1200)]
    lines[700] = lines[700][:-5]  # line 701: cut short
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    local_supabase.requests.clear()
    with pytest.raises(bulk.ImportInvalid) as refused:
        events.import_jsonl(path, batch_size=500)
    message = str(refused.value)
    assert message.startswith("line 701: not valid JSON") and "nothing was written" in message
    assert "\n" not in message and refused.value.problems[0][0] == 701
    assert local_supabase.requests.count() == 0  # validated before the first request
    assert events.count() == 10


def test_every_bad_line_is_counted_and_the_first_ones_are_named(events: Collection) -> None:
    lines = [json.dumps(event(100 + i)) for i in range(20)]
    for n in (3, 8, 12, 15, 17, 19, 20):
        lines[n - 1] = '{"id": "x"}'
    with pytest.raises(bulk.ImportInvalid, match=r"^line 3: missing 'creation_utc'") as refused:
        events.import_jsonl(lines)
    assert refused.value.count == 7
    assert "6 more bad line(s): 8, 12, 15, 17, 19, …" in str(refused.value)
    assert events.count() == 10


def test_an_id_repeated_with_other_content_is_a_bad_line_and_an_exact_repeat_is_skipped(
    events: Collection, local_supabase: LocalSupabase
) -> None:
    same = json.dumps(event(50))
    with pytest.raises(bulk.ImportInvalid, match=r"line 3: id 'ev-000050' is also on line 1"):
        events.import_jsonl([same, json.dumps(event(51)), json.dumps(event(50, kind="x"))])
    report = events.import_jsonl([same, json.dumps(event(51)), same])
    assert (report.lines, report.new, report.duplicates, report.written) == (3, 2, 1, 2)
    assert events.count() == 12


def test_a_line_that_is_not_utf8_is_named(events: Collection, tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    good = json.dumps(event(60)).encode()
    latin1 = json.dumps(event(61, kind="caf\u00e9"), ensure_ascii=False).encode("latin-1")
    path.write_bytes(good + b"\n\n" + latin1 + b"\n")
    with pytest.raises(bulk.ImportInvalid, match=r"^line 3: not UTF-8 text"):
        events.import_jsonl(path)
    assert events.count() == 10


def test_dry_run_counts_new_changed_unchanged_and_sends_no_write(
    events: Collection, local_supabase: LocalSupabase
) -> None:
    lines = [json.dumps(event(i)) for i in range(5)]  # stored as they are
    lines.append(json.dumps(event(5, kind="changed")))
    lines += [json.dumps(event(20 + i)) for i in range(4)]
    local_supabase.requests.clear()
    report = events.import_jsonl(lines, dry_run=True)
    assert (report.new, report.changed, report.unchanged, report.written) == (4, 1, 5, 0)
    assert report.conflicts == [{"line": 6, "id": "ev-000005"}] and not report.ok
    assert report.summary().startswith("dry run: would write 4 of 10 line(s)")
    assert _writes(local_supabase) == 0 and events.count() == 10
    replace = events.import_jsonl(lines, dry_run=True, on_conflict="replace")
    assert replace.ok and "would write 5 of 10" in replace.summary()


def test_changed_documents_stop_the_import_before_any_write_unless_told(
    events: Collection, local_supabase: LocalSupabase
) -> None:
    lines = [json.dumps(event(30)), json.dumps(event(2, kind="changed"))]
    local_supabase.requests.clear()
    with pytest.raises(bulk.ImportConflict, match=r"first: line 2, id 'ev-000002'.*--replace"):
        events.import_jsonl(lines)
    assert _writes(local_supabase) == 0 and events.count() == 10
    kept = events.import_jsonl(lines, on_conflict="ignore")
    assert (kept.new, kept.changed, kept.written) == (1, 1, 1)
    assert events.get("ev-000002") == event(2)
    replaced = events.import_jsonl(lines, on_conflict="replace")
    assert (replaced.new, replaced.unchanged, replaced.changed, replaced.written) == (0, 1, 1, 1)
    assert events.get("ev-000002") == event(2, kind="changed")


def test_running_the_same_import_again_writes_nothing(
    events: Collection, local_supabase: LocalSupabase, tmp_path: Path
) -> None:
    path = _jsonl(tmp_path / "in.jsonl", [event(1000 + i) for i in range(1200)])
    progress = Recorder()
    first = events.import_jsonl(path, batch_size=500, progress=progress)
    assert (first.new, first.written) == (1200, 1200)
    assert [(label, done) for label, _, done in progress.phases] == [
        ("validate events", 1200), ("compare events", 1200), ("import events", 1200),
    ]  # fmt: skip
    assert progress.ended == 3
    local_supabase.requests.clear()
    second = events.import_jsonl(path, batch_size=500)
    assert (second.new, second.unchanged, second.written) == (0, 1200, 0)
    assert _writes(local_supabase) == 0 and events.count() == 1210


def test_a_pipe_is_spooled_and_read_twice(
    events: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "_SPOOL_BYTES", 4096)  # roll over to a file on disk
    read_end, write_end = os.pipe()
    payload = "".join(json.dumps(event(2000 + i)) + "\n" for i in range(300)).encode()

    def feed() -> None:
        with open(write_end, "wb") as out:
            out.write(payload)

    writer = threading.Thread(target=feed)
    writer.start()
    with open(read_end, "rb") as stdin:
        assert not stdin.seekable()
        report = events.import_jsonl(stdin)
    writer.join()
    assert (report.new, report.written) == (300, 300) and events.count() == 310


def test_a_text_stream_and_a_list_of_lines_are_sources_too(events: Collection) -> None:
    import io

    stream: IO[str] = io.StringIO(json.dumps(event(70)) + "\n" + json.dumps(event(71)) + "\n")
    assert events.import_jsonl(stream).written == 2
    assert events.import_jsonl([json.dumps(event(72))]).written == 1


def test_a_missing_file_is_one_line_and_no_request(
    events: Collection, local_supabase: LocalSupabase, tmp_path: Path
) -> None:
    local_supabase.requests.clear()
    with pytest.raises(ValueError, match=r"cannot read .*nope.jsonl: No such file"):
        events.import_jsonl(tmp_path / "nope.jsonl")
    assert local_supabase.requests.count() == 0


# --- export --------------------------------------------------------------------------------


def test_plan_export_decides_the_target_before_any_request(
    db: Connection, store: StoreTables, local_supabase: LocalSupabase, tmp_path: Path
) -> None:
    sessions = db.store(store.prefix)
    one, two = sessions.collection("events"), sessions.collection("sessions")
    local_supabase.requests.clear()
    assert bulk.plan_export([one], None).targets[0].path is None
    assert bulk.plan_export([one], "-").targets[0].path is None
    with pytest.raises(bulk.ExportTargetError, match="2 collections need an output directory"):
        bulk.plan_export([one, two], None)
    file = tmp_path / "file.jsonl"
    file.write_text("")
    with pytest.raises(bulk.ExportTargetError, match="is a file, not a directory"):
        bulk.plan_export([one, two], file)
    with pytest.raises(bulk.ExportTargetError, match="does not exist"):
        bulk.plan_export([one], tmp_path / "no" / "such.jsonl")
    in_dir = bulk.plan_export([one], tmp_path)
    assert in_dir.targets[0].path == str(tmp_path / f"{store.prefix}.events.jsonl")
    fresh = bulk.plan_export([one, two], tmp_path / "new")
    assert fresh.directory == str(tmp_path / "new") and not (tmp_path / "new").exists()
    assert bulk.plan_export([one], file).targets[0].path == str(file)
    assert local_supabase.requests.count() == 0


def test_export_into_an_existing_directory_writes_store_dot_collection(
    db: Connection, store: StoreTables, tmp_path: Path
) -> None:
    events = db.store(store.prefix).collection("events")
    [result] = bulk.export(bulk.plan_export([events], tmp_path))
    assert result.documents == 10
    assert os.listdir(tmp_path) == [f"{store.prefix}.events.jsonl"]
    lines = (tmp_path / f"{store.prefix}.events.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [event(i) for i in range(10)]


def test_several_collections_go_to_a_created_directory_with_totals(
    db: Connection, store: StoreTables, tmp_path: Path
) -> None:
    sessions = db.store(store.prefix)
    targets = [sessions.collection(n) for n in sessions.collections]
    progress = Recorder()
    results = bulk.export(bulk.plan_export(targets, tmp_path / "dump"), progress=progress, totals=True)
    assert sorted(os.listdir(tmp_path / "dump")) == sorted(
        f"{store.prefix}.{name}.jsonl" for name in sessions.collections
    )
    assert [r.documents for r in results] == [0, 10, 0]
    assert (f"export {store.prefix}.events", 10, 10) in progress.phases


def test_an_interrupted_export_leaves_the_old_file_and_no_temporary_file(
    events: Collection, tmp_path: Path
) -> None:
    target = tmp_path / "events.jsonl"
    target.write_text("previous\n")
    with pytest.raises(KeyboardInterrupt):
        events.export_jsonl(target, progress=Recorder(stop_after=5), page_size=3)
    assert os.listdir(tmp_path) == ["events.jsonl"] and target.read_text() == "previous\n"


def test_a_failed_export_leaves_no_file(db: Connection, tmp_path: Path) -> None:
    absent = db.store("absent_sessions_").collection("events")
    with pytest.raises(TableMissing):
        absent.export_jsonl(tmp_path / "events.jsonl")
    assert os.listdir(tmp_path) == []


def test_export_then_import_into_another_store_is_identical(
    db: Connection, store: StoreTables, make_store: Callable[[], StoreTables], tmp_path: Path
) -> None:
    source = db.store(store.prefix).collection("events")
    target = db.store(make_store().prefix).collection("events")
    dump = source.export_jsonl(tmp_path / "a.jsonl")
    assert target.import_jsonl(dump.path or "").written == 10
    target.export_jsonl(tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


# --- failed documents ----------------------------------------------------------------------


def test_restore_moves_fixed_documents_back_and_refuses_the_rest(
    events: Collection, store: StoreTables, local_supabase: LocalSupabase
) -> None:
    failed = store.failed_table("events")
    broken = {"id": "ev-broken", "version": "0.8.0"}  # lacks creation_utc
    local_supabase.execute_sql(
        f'INSERT INTO "{failed}" (id, data) VALUES '
        f"('ev-000050', '{json.dumps(event(50))}'::jsonb), "
        f"('ev-broken', '{json.dumps(broken)}'::jsonb), "
        f"('ev-000003', '{json.dumps(event(3, kind='other'))}'::jsonb)"
    )
    assert {d.id for d in events.failed()} == {"ev-000050", "ev-broken", "ev-000003"}
    outcome = {r.id: r for r in events.restore_failed(["ev-000050", "ev-broken", "ev-000003", "x"])}
    assert outcome["ev-000050"].restored and events.get("ev-000050") == event(50)
    assert not outcome["ev-broken"].restored and "creation_utc" in outcome["ev-broken"].message
    assert "different document" in outcome["ev-000003"].message
    assert outcome["x"].as_dict() == {"id": "x", "restored": False, "message": f"not in {failed}"}
    assert sorted(d.id or "" for d in events.failed()) == ["ev-000003", "ev-broken"]
