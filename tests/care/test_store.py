"""The listener's record: atomic, 0640 in a 0750 folder, and a bad file kept aside, never
trusted and never lost."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

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
    "latin-1": '{"format": 1, "listener": "ID", "café": 1}'.encode("latin-1"),
    "too big": b" " * (MAX_FILE_BYTES + 1),
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


GOOD_NIGHT = b'{"t": 5, "arm": "sleep", "reward": 1.5}'
BAD_NIGHTS = {
    "huge reward": b'{"t": 1, "arm": "calm", "reward": 1e300}',
    # an arm the personaliser cannot read turned it off for every later session
    "unknown variation": b'{"t": 1, "arm": "calm/bogus"}',
    "arm of three parts": b'{"t": 1, "arm": "calm/slower/x"}',
    "not a mapping": b'[1, 2]',
}


@pytest.mark.parametrize("kind", sorted(BAD_NIGHTS))
def test_a_bad_night_is_left_out_and_the_others_kept(tmp_path, kind, caplog):
    """One malformed night set the whole record aside: a listener's learning lost for one
    line. The night is left out, the file as it was kept beside it."""
    store = CareStore(tmp_path)
    listener = store.new_listener(1000.0)
    path = store.path_for(listener)
    content = (b'{"format": 1, "listener": "' + listener.encode() + b'", "created_at": 1, '
               b'"nights": [' + BAD_NIGHTS[kind] + b", " + GOOD_NIGHT + b"]}")
    path.write_bytes(content)
    rec = store.load(listener)
    assert [(n.arm, n.reward) for n in rec.nights] == [("sleep", 1.5)]
    assert rec.problem and "nights[0]" in rec.problem and "kept as" in rec.problem
    [kept] = store.listeners_dir.glob(f"{listener}.json.bad-*")
    assert kept.read_bytes() == content
    assert store.load(listener).problem is None  # the good nights were written back


def test_a_record_from_a_newer_release_is_left_as_it_is(tmp_path):
    """After a rollback, `format: 2` (or a night with a key this release does not know) reset
    every listener. A newer record is left untouched; unknown keys are ignored."""
    store = CareStore(tmp_path)
    listener = store.new_listener(1000.0)
    path = store.path_for(listener)
    newer = (b'{"format": 2, "listener": "' + listener.encode() + b'", "created_at": 1, '
             b'"nights": []}')
    path.write_bytes(newer)
    with pytest.raises(ValueError, match="newer calmtunes"):
        store.load(listener)
    with pytest.raises(ValueError):
        store.add_night(listener, Night(2000.0, "calm", 1.0))
    assert path.read_bytes() == newer and not list(store.listeners_dir.glob("*.bad-*"))
    assert "newer" in store.load(listener, set_aside=False).problem
    path.write_bytes(b'{"format": 1, "listener": "' + listener.encode() + b'", "created_at": 1,'
                     b' "nights": [{"t": 1, "arm": "calm", "mood": "x"}]}')
    rec = store.load(listener)
    assert rec.problem is None and [n.arm for n in rec.nights] == ["calm"]


def test_a_record_the_daemon_may_not_read_is_left_alone_with_the_fix(tmp_path, monkeypatch):
    """Files left root's 0600 by a `sudo` edit were renamed .bad and the listener's learning
    started from zero. They are left alone, nothing is written over them, the fix is named."""
    from calmtunes.care import store as store_mod

    store = CareStore(tmp_path)
    listener = store.new_listener(1000.0)
    store.add_night(listener, Night(1500.0, "sleep", 1.0))
    path = store.path_for(listener)
    before = path.read_bytes()
    real = store_mod.read_small
    shut = {path}

    def read_small(p, limit):  # as for a file of root's, mode 0600 (the tests run as root)
        if Path(p) in shut:
            raise PermissionError(13, "Permission denied", str(p))
        return real(p, limit)

    monkeypatch.setattr(store_mod, "read_small", read_small)
    with pytest.raises(PermissionError, match="chown"):
        store.load(listener)
    with pytest.raises(PermissionError):
        store.add_night(listener, Night(2000.0, "calm", 1.0))
    shut.add(store.current_path)
    with pytest.raises(PermissionError, match="chown"):
        store.current()
    assert path.read_bytes() == before and not list(tmp_path.rglob("*.bad-*"))
    shut.clear()
    assert [n.arm for n in store.load(listener).nights] == ["sleep"]
    assert store.current()[0] == listener


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
