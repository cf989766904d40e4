"""The listener's record: atomic, 0640 in a 0750 folder, and a bad file kept aside, never
trusted and never lost."""

from __future__ import annotations

import json
import os
import stat

import pytest

from calmtunes.care.store import MAX_FILE_BYTES, CareStore, Night


def mode(p):
    return stat.S_IMODE(os.lstat(p).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000])
def test_records_are_0640_in_0750_folders_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        store = CareStore(tmp_path / "state")
        listener = store.new_listener(1000.0)
    finally:
        os.umask(old)
    assert mode(tmp_path / "state") == 0o750 and mode(store.dir) == 0o750
    assert mode(store.listeners_dir) == 0o750
    assert mode(store.current_path) == 0o640 and mode(store.path_for(listener)) == 0o640


def test_nights_round_trip_and_a_new_listener_starts_afresh(tmp_path):
    store = CareStore(tmp_path)
    first, problem = store.current(1000.0)
    assert problem is None and first.startswith("L")
    store.add_night(first, Night(1000.0, "sleep", 2.5, "ok", 7))
    store.add_night(first, Night(2000.0, "calm/no-bed", None, "too short", 8))
    rec = store.load(first)
    assert [(n.arm, n.reward, n.session) for n in rec.nights] == [
        ("sleep", 2.5, 7), ("calm/no-bed", None, 8)]
    second = store.new_listener(3000.0)
    assert second != first and store.current()[0] == second and store.peek_current() == second
    assert store.load(second).nights == [] and store.load(first).nights  # the old one is kept


BAD = {
    "not json": b"{nights: [",
    "a list": b"[]",
    "NaN": b'{"format": 1, "listener": "ID", "created_at": NaN, "nights": []}',
    "huge reward": b'{"format": 1, "listener": "ID", "created_at": 1, '
                   b'"nights": [{"t": 1, "arm": "calm", "reward": 1e300}]}',
    "other listener": b'{"format": 1, "listener": "Lx", "created_at": 1, "nights": []}',
    "extra key": b'{"format": 1, "listener": "ID", "created_at": 1, '
                 b'"nights": [{"t": 1, "arm": "calm", "cmd": "rm"}]}',
    "latin-1": '{"format": 1, "listener": "ID", "café": 1}'.encode("latin-1"),
    "too big": b" " * (MAX_FILE_BYTES + 1),
    # an arm the personaliser cannot read turned it off for every later session
    "unknown variation": b'{"format": 1, "listener": "ID", "created_at": 1, '
                         b'"nights": [{"t": 1, "arm": "calm/bogus"}]}',
    "arm of three parts": b'{"format": 1, "listener": "ID", "created_at": 1, '
                          b'"nights": [{"t": 1, "arm": "calm/slower/x"}]}',
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_bad_record_is_kept_aside_and_the_listener_starts_afresh(tmp_path, kind, caplog):
    store = CareStore(tmp_path)
    listener = store.new_listener(1000.0)
    path = store.path_for(listener)
    content = BAD[kind].replace(b"ID", listener.encode())
    path.write_bytes(content)
    rec = store.load(listener)
    assert rec.nights == [] and rec.problem and "kept as" in rec.problem
    kept = list(store.listeners_dir.glob(f"{listener}.json.bad-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == content  # nothing lost
    assert "starting afresh" in caplog.text
    store.add_night(listener, Night(2000.0, "calm", 1.0))  # and life goes on
    assert len(store.load(listener).nights) == 1


def test_a_reader_leaves_a_bad_record_where_it_is(tmp_path):
    store = CareStore(tmp_path)
    listener = store.new_listener(1000.0)
    store.path_for(listener).write_text("garbage")
    rec = store.load(listener, set_aside=False)
    assert rec.problem and store.path_for(listener).read_text() == "garbage"


def test_links_and_hostile_ids_are_refused(tmp_path):
    store = CareStore(tmp_path)
    listener = store.new_listener(1000.0)
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"format": 1, "listener": listener, "created_at": 1,
                                  "nights": []}))
    path = store.path_for(listener)
    path.unlink()
    path.symlink_to(secret)
    rec = store.load(listener)
    assert "symbolic link" in rec.problem and secret.exists()
    store.current_path.write_text(json.dumps({"listener": "../../etc/passwd"}))
    fresh, problem = store.current()
    assert "no valid listener id" in problem and fresh != listener
    with pytest.raises(ValueError, match="letters, digits"):
        store.path_for("../x")


def test_a_folder_in_a_care_files_place_is_kept_aside_with_its_path_named(tmp_path):
    """A folder where current.json or a listener's file belongs: the message gave a file
    descriptor number ("Is a directory: 6") and the folder stayed, so the personaliser was off
    (or nights unsaved) at every session. Now it is named, set aside, and care starts afresh."""
    store = CareStore(tmp_path)
    listener = store.new_listener(1000.0)
    path = store.path_for(listener)
    path.unlink()
    path.mkdir()
    (path / "inside").write_text("kept")
    rec = store.load(listener)
    assert rec.nights == [] and str(path) in rec.problem and "a folder" in rec.problem
    kept = list(store.listeners_dir.glob(f"{listener}.json.bad-*"))
    assert len(kept) == 1 and (kept[0] / "inside").read_text() == "kept"
    store.add_night(listener, Night(2000.0, "calm", 1.0))
    assert len(store.load(listener).nights) == 1
    store.current_path.unlink()
    store.current_path.mkdir()
    fresh, problem = store.current()
    assert problem and str(store.current_path) in problem and ": 6" not in problem
    assert fresh and store.current_path.is_file()
