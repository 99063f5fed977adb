"""The device key on disk (agent/identity.py)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from agent.exceptions import KeyFileError
from agent.identity import generate_key_file, load_key_file
from agent.protocol import public_key_b64


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_creates_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "device.key"
    old_umask = os.umask(0)  # even with a permissive umask the key is 0600
    try:
        key = generate_key_file(path)
    finally:
        os.umask(old_umask)
    assert mode(path) == 0o600
    assert public_key_b64(load_key_file(path)) == public_key_b64(key)
    assert not list(tmp_path.glob("state/*.tmp"))


def test_generate_never_overwrites_without_force(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    first = generate_key_file(path)
    with pytest.raises(KeyFileError, match=re.escape(str(path))):
        generate_key_file(path)
    assert public_key_b64(load_key_file(path)) == public_key_b64(first)
    second = generate_key_file(path, force=True)
    assert public_key_b64(load_key_file(path)) == public_key_b64(second) != public_key_b64(first)
    assert mode(path) == 0o600


@pytest.mark.parametrize("bits", [0o640, 0o604, 0o660, 0o644, 0o620])
def test_load_refuses_group_or_other_access(tmp_path: Path, bits: int) -> None:
    path = tmp_path / "device.key"
    generate_key_file(path)
    path.chmod(bits)
    with pytest.raises(KeyFileError) as info:
        load_key_file(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message and f"{bits:04o}" in message


@pytest.mark.parametrize(
    "content",
    [b"", b"zz" * 32, b"ab" * 31, b"ab" * 33, b"\xff\xfe", b"-----BEGIN PRIVATE KEY-----\n"],
    ids=["empty", "not-hex", "short", "long", "binary", "pem"],
)
def test_load_refuses_bad_content(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "device.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError) as info:
        load_key_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_load_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.key"
    with pytest.raises(KeyFileError, match=re.escape(str(path))):
        load_key_file(path)
