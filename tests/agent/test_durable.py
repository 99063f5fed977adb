"""Durable small files (agent/durable.py): whole or not at all, with the mode asked for."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.durable import replace_file, write_synced


def test_replace_file_writes_whole_with_its_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    stale = tmp_path / ".state.json.tmp"
    stale.write_bytes(b"left by a crash")
    stale.chmod(0o666)  # a stale temporary's wide mode must not carry over
    old_umask = os.umask(0)
    try:
        replace_file(target, b"new\n", mode=0o600)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_replace_file_takes_chunks(tmp_path: Path) -> None:
    target = tmp_path / "bundle.json"
    replace_file(target, iter([b"ab", b"", b"cd"]), tmp=tmp_path / "t")
    assert target.read_bytes() == b"abcd"
    assert not (tmp_path / "t").exists()


def test_a_failed_replace_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "config.sha256"
    target.write_bytes(b"old\n")

    def chunks() -> Iterator[bytes]:
        yield b"half"
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        replace_file(target, chunks())
    assert target.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.sha256"]


def test_write_synced_exclusive_refuses_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "key.tmp"
    path.write_bytes(b"someone else's")
    with pytest.raises(FileExistsError):
        write_synced(path, b"x", exclusive=True)
    assert path.read_bytes() == b"someone else's"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: only root can give a file away")
def test_root_writing_into_another_users_folder_gives_the_file_to_that_user(
    tmp_path: Path,
) -> None:
    from agent.durable import make_dirs

    folder = tmp_path / "state"
    folder.mkdir()
    os.chown(folder, 65534, 65533)
    replace_file(folder / "state.json", b"{}\n", mode=0o600)
    make_dirs(folder / "buffer" / "segments")
    for path in (folder / "state.json", folder / "buffer", folder / "buffer" / "segments"):
        assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65533), path
