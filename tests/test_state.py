import json
import logging
import os
import resource
import threading
from pathlib import Path

from calmtunes.state import MAX_STATE_BYTES, StateStore

DEFAULTS = {"preset": "calm", "volume_db": -6.0, "playing": True}


def test_round_trip(tmp_path):
    store = StateStore(tmp_path / "s" / "state.json", DEFAULTS)
    assert store.load() == DEFAULTS
    store.save({"preset": "sleep", "volume_db": -12.0, "playing": False})
    assert StateStore(tmp_path / "s" / "state.json", DEFAULTS).load() == {
        "preset": "sleep", "volume_db": -12.0, "playing": False}


def test_a_torn_or_corrupt_file_gives_defaults(tmp_path, caplog):
    path = tmp_path / "state.json"
    path.write_bytes(b'{"preset": "sl')  # what a cut write would leave, were it not atomic
    assert StateStore(path, DEFAULTS).load() == DEFAULTS
    assert "unreadable" in caplog.text


def test_a_file_that_holds_no_state_is_kept_aside_not_written_over(tmp_path, caplog):
    path = tmp_path / "state.json"
    for bad in (b"\xff\xfe garbage", b"[1, 2]", b'{"preset": "sl', b"[" * 5000):
        for old in tmp_path.glob("state.json.bad-*"):
            old.unlink()
        path.write_bytes(bad)
        store = StateStore(path, DEFAULTS)
        assert store.load() == DEFAULTS
        (kept,) = tmp_path.glob("state.json.bad-*")
        assert kept.read_bytes() == bad  # the file, whole
        assert f"kept as {kept.name}" in caplog.text
        store.save({**DEFAULTS, "preset": "sleep"})  # the next save writes a fresh file …
        assert kept.read_bytes() == bad  # … and the copy stays


def test_only_the_newest_three_copies_are_kept(tmp_path):
    path = tmp_path / "state.json"
    older = [tmp_path / f"state.json.bad-2026010{d}T000000Z" for d in range(1, 6)]
    for old in older:
        old.write_bytes(b"x")
    path.write_bytes(b"not json")
    StateStore(path, DEFAULTS).load()
    kept = sorted(tmp_path.glob("state.json.bad-*"))
    assert len(kept) == 3
    assert kept[:2] == older[-2:] and kept[-1].read_bytes() == b"not json"


def test_a_state_file_that_cannot_be_moved_aside_still_gives_defaults(tmp_path, caplog):
    path = tmp_path / "state.json"
    path.write_bytes(b"not json")
    os.chmod(tmp_path, 0o500)  # the folder: no renames (root ignores this; the load must work)
    try:
        assert StateStore(path, DEFAULTS).load() == DEFAULTS
    finally:
        os.chmod(tmp_path, 0o700)
    assert "unreadable" in caplog.text


def test_wrong_types_and_unknown_keys_are_ignored(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"preset": 3, "volume_db": -3.0, "rogue": 1}))
    assert StateStore(path, DEFAULTS).load() == {**DEFAULTS, "volume_db": -3.0}


def test_save_leaves_no_temporary_files(tmp_path):
    store = StateStore(tmp_path / "state.json", DEFAULTS)
    for i in range(5):
        store.save({**DEFAULTS, "volume_db": float(-i)})
    assert os.listdir(tmp_path) == ["state.json"]


def test_unwritable_folder_is_reported_not_raised(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = StateStore(blocker / "state.json", DEFAULTS)
    store.save({**DEFAULTS, "preset": "sleep"})
    assert "cannot save state" in caplog.text


def test_temporary_files_left_by_a_kill_are_removed_at_load(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({**DEFAULTS, "preset": "sleep"}))
    (tmp_path / ".state.json.k2j4_x").write_text('{"pres')
    (tmp_path / ".state.json.9f8e7d").write_text("")
    (tmp_path / "sessions.db").write_text("")  # not ours to remove
    assert StateStore(path, DEFAULTS).load()["preset"] == "sleep"
    assert sorted(os.listdir(tmp_path)) == ["sessions.db", "state.json"]


def test_a_float_default_takes_an_int_and_a_wrong_type_is_logged_and_rewritten(tmp_path, caplog):
    path = tmp_path / "state.json"
    path.write_text('{"volume_db": -9, "preset": 3, "playing": "yes"}')
    store = StateStore(path, DEFAULTS)
    assert store.load() == {**DEFAULTS, "volume_db": -9}
    assert "preset is 3, not a str" in caplog.text and "playing is 'yes'" in caplog.text
    store.save({**DEFAULTS, "volume_db": -9.0})  # same values: rewritten all the same
    assert json.loads(path.read_text()) == {**DEFAULTS, "volume_db": -9.0}


def test_non_finite_numbers_are_never_written(tmp_path, caplog):
    path = tmp_path / "state.json"
    store = StateStore(path, DEFAULTS)
    store.save({**DEFAULTS, "volume_db": -3.0})
    store.save({**DEFAULTS, "volume_db": float("nan")})
    assert json.loads(path.read_text())["volume_db"] == -3.0
    assert "cannot save state" in caplog.text


def test_a_fifo_in_place_of_the_file_gives_defaults_without_waiting(tmp_path, caplog):
    path = tmp_path / "state.json"
    os.mkfifo(path)  # no writer: reading it the plain way would wait for ever
    done = []
    reader = threading.Thread(target=lambda: done.append(StateStore(path, DEFAULTS).load()),
                              daemon=True)
    reader.start()
    reader.join(5)
    assert done == [DEFAULTS]
    assert "not a regular file" in caplog.text


def test_a_folder_in_place_of_the_file_is_named_kept_aside_and_saving_works(tmp_path, caplog):
    """A folder could never be replaced by a save: every save failed from then on, and the
    preset and volume were lost at each power cut. It is now moved aside (contents and all)."""
    path = tmp_path / "state.json"
    path.mkdir()
    (path / "inside").write_text("kept")
    store = StateStore(path, DEFAULTS)
    assert store.load() == DEFAULTS
    assert f"state file {path} is unreadable (a folder, not a state file; kept as" in caplog.text
    [kept] = tmp_path.glob("state.json.bad-*")
    assert (kept / "inside").read_text() == "kept"
    store.save({**DEFAULTS, "preset": "uplift"})
    assert json.loads(path.read_text())["preset"] == "uplift"
    assert "cannot save" not in caplog.text


def test_a_huge_file_is_refused_without_reading_it_whole(tmp_path, caplog):
    path = tmp_path / "state.json"
    with open(path, "wb") as f:
        f.truncate(1 << 40)  # sparse: a terabyte that takes no disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert StateStore(path, DEFAULTS).load() == DEFAULTS
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 10 * 1024  # KiB
    assert f"larger than {MAX_STATE_BYTES} bytes" in caplog.text


def test_a_file_too_large_is_kept_aside_not_written_over(tmp_path, caplog):
    """Not read, but not destroyed either: the next save would rename the new state over it."""
    path = tmp_path / "state.json"
    big = b'{"preset": "sleep", "note": "' + b"x" * MAX_STATE_BYTES + b'"}'
    path.write_bytes(big)
    store = StateStore(path, DEFAULTS)
    assert store.load() == DEFAULTS
    store.save(DEFAULTS)
    kept = list(tmp_path.glob("state.json.bad-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == big
    assert f"kept as {kept[0].name}" in caplog.text
    assert json.loads(path.read_text()) == DEFAULTS


def test_a_symbolic_link_in_place_of_the_file_is_not_followed(tmp_path, caplog):
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({**DEFAULTS, "preset": "sleep"}))
    path = tmp_path / "state.json"
    path.symlink_to(target)
    store = StateStore(path, DEFAULTS)
    assert store.load() == DEFAULTS
    store.save({**DEFAULTS, "preset": "uplift"})
    assert json.loads(target.read_text())["preset"] == "sleep"  # the link's target untouched
    assert not path.is_symlink() and json.loads(path.read_text())["preset"] == "uplift"
    assert "a symbolic link, never followed; kept as" in caplog.text
    [kept] = tmp_path.glob("state.json.bad-*")
    assert kept.is_symlink() and kept.resolve() == target  # kept for a technician to see


def test_a_save_that_keeps_failing_is_said_once_and_its_recovery_too(tmp_path, caplog):
    path = tmp_path / "state.json"
    path.mkdir()  # in the way of every save
    caplog.set_level(logging.INFO, "calmtunes.state")
    store = StateStore(path, DEFAULTS)
    for i in range(40):  # ten seconds of the loop's saves
        store.save({**DEFAULTS, "volume_db": float(-i)})
    assert caplog.text.count("cannot save state") == 1
    path.rmdir()
    store.save({**DEFAULTS, "volume_db": -3.0})
    assert json.loads(path.read_text())["volume_db"] == -3.0
    assert f"state saved to {path} again" in caplog.text


def test_a_state_folder_that_is_a_file_is_said_once_and_the_music_plays(tmp_config, caplog):
    """A state_dir that is a file gave four messages in four words (Errno 20, 'File exists', a
    wrong 'disk full' hint), none saying what was wrong. One error now, naming it and the fix."""
    import logging

    from clocked import run, virtual_daemon

    blocker = Path(tmp_config.device.state_dir)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("")
    daemon = virtual_daemon(tmp_config)
    status = run(daemon, 2.0, at=[(1.5, daemon.status)])[-1]
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == 1, problems
    assert "is a file, not a folder" in problems[0] and "sudo mv" in problems[0]
    assert status["components"]["audio"]["state"] == "ok" and status["playing"]
    assert any("is a file" in p for p in status["records"])
    assert blocker.read_text() == ""
