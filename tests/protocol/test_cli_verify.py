"""`qatysu verify FILE [--public-key B64] [--json]` through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.protocol import ZERO_HASH, bundle_filename, make_bundle, public_key_b64
from tests.protocol.chains import DEVICE, KEY, OTHER_KEY, make_chain, resign
from tests.protocol.test_gaps import gap_record

ROOT = Path(__file__).resolve().parents[2]


def write_bundle(tmp_path: Path, records: list[dict[str, Any]], key: Any = KEY) -> Path:
    bundle = make_bundle(DEVICE, public_key_b64(key), records)
    path = tmp_path / bundle_filename(bundle)
    path.write_text(json.dumps(bundle, indent=1), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def chain(n: int = 4) -> list[dict[str, Any]]:
    return make_chain([("badge", {"uid": f"04{i:06X}"}) for i in range(n)])


def test_intact_bundle_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_bundle(tmp_path, chain())
    assert path.name == f"qatysu-{DEVICE}-1-4.json"
    code, out, err = run(capsys, str(path))
    assert (code, err) == (0, "")
    assert "intact" in out and "4 records" in out and "seq 1..4" in out


def test_public_key_match_and_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_bundle(tmp_path, chain())
    assert run(capsys, str(path), "--public-key", public_key_b64(KEY))[0] == 0
    code, out, _ = run(capsys, str(path), "--public-key", public_key_b64(OTHER_KEY))
    assert code == 1 and "not signed by the given public key" in out
    # Every record re-signed by another key, and the bundle naming that key: it
    # is self-consistent, so only the pinned device key exposes it.
    (tmp_path / "x").mkdir()
    forged = write_bundle(tmp_path / "x", [resign(r, OTHER_KEY) for r in chain()], OTHER_KEY)
    assert run(capsys, str(forged))[0] == 0
    assert run(capsys, str(forged), "--public-key", public_key_b64(KEY))[0] == 1
    code, _, err = run(capsys, str(path), "--public-key", "not-a-key")
    assert code == 2 and err.startswith("qatysu: error: --public-key") and err.count("\n") == 1


def test_declared_gap_exits_3_and_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = chain(6)
    gap = gap_record(7, full[-1]["hash"], 3, 4, full[3]["hash"])
    path = write_bundle(tmp_path, [*full[:2], *full[4:], gap])
    code, out, _ = run(capsys, str(path))
    assert code == 3
    assert "declared gap: seq 3..4 (quarantined), declared at seq 7" in out
    code, out, _ = run(capsys, str(path), "--json")
    result = json.loads(out)
    assert code == 3 and result["intact"] is True and result["failure"] is None
    assert result["gaps"] == [
        {"first_seq": 3, "last_seq": 4, "last_hash": full[3]["hash"], "reason": "quarantined",
         "declared_at": 7}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("tamper", "seq", "reason"),
    [
        (lambda rs: rs[2]["data"].update(uid="FFFFFFFF"), 3, "hash"),
        (lambda rs: rs.__setitem__(2, resign(rs[2], OTHER_KEY)), 3, "signature"),
        (lambda rs: rs.__delitem__(1), 3, "gap"),
        (lambda rs: rs.insert(3, rs[1]), 2, "regression"),
        (lambda rs: rs[1].__setitem__("device", "dev-other"), 2, "device"),
        (lambda rs: rs.__setitem__(3, resign({**rs[3], "prev": ZERO_HASH})), 4, "link"),
        (lambda rs: rs[1].__setitem__("mono_ns", -5), 2, "encoding"),
    ],
)
def test_broken_bundle_exits_1_with_seq_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tamper: Any, seq: int, reason: str
) -> None:
    records = chain()
    tamper(records)
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(make_bundle(DEVICE, public_key_b64(KEY), records)))
    code, out, _ = run(capsys, str(path))
    assert code == 1 and f"BROKEN at seq {seq}: {reason}:" in out
    code, out, _ = run(capsys, str(path), "--json")
    result = json.loads(out)
    assert code == 1 and result["intact"] is False
    assert (result["failure"]["seq"], result["failure"]["reason"]) == (seq, reason)


@pytest.mark.parametrize(
    ("wire", "detail"),
    [("5002000000.0", "fraction"), ("5002e6", "exponent"), ("NaN", "not a JSON number"),
     ("50020000000000000000", "outside"), ('"\\ud800"', "surrogate")],
)  # fmt: skip
def test_value_outside_the_set_names_its_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], wire: str, detail: str
) -> None:
    raw = json.dumps(make_bundle(DEVICE, public_key_b64(KEY), chain()))
    raw = raw.replace('"mono_ns": 5002000000', f'"mono_ns": {wire}', 1)
    path = tmp_path / "b.json"
    path.write_text(raw)
    code, out, _ = run(capsys, str(path))
    assert code == 1 and "BROKEN at seq 2: encoding:" in out and detail in out


def test_duplicate_key_in_a_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = json.dumps(make_bundle(DEVICE, public_key_b64(KEY), chain()))
    raw = raw.replace('"seq": 3,', '"seq": 3, "seq": 3,', 1)
    path = tmp_path / "b.json"
    path.write_text(raw)
    code, out, _ = run(capsys, str(path))
    assert code == 1 and "BROKEN at seq 3: encoding:" in out and "duplicate key 'seq'" in out


@pytest.mark.parametrize(
    "content", [b"not json at all", b'{"v": 1, "records": [', b"\xff\xfe", None]
)
def test_unreadable_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None
) -> None:
    path = tmp_path / "qatysu-dev-7-1-4.json"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run(capsys, str(path))
    assert code == 1 and out == ""
    assert err.startswith(f"qatysu: error: {path}: ") and err.count("\n") == 1


def test_not_a_bundle_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "b.json"
    path.write_text('{"v": 1, "device": "dev-7", "records": []}')
    code, out, _ = run(capsys, str(path))
    assert code == 1 and "encoding" in out


def test_python_dash_m_agent(tmp_path: Path) -> None:
    full = chain(6)
    gap = gap_record(7, full[-1]["hash"], 3, 4, full[3]["hash"])
    path = write_bundle(tmp_path, [*full[:2], *full[4:], gap])
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "verify", str(path), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["gaps"][0]["first_seq"] == 3


def test_bundle_slice_takes_its_first_prev_as_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = chain(8)[4:]  # seq 5..8: an export after the portal acknowledged 1..4
    path = write_bundle(tmp_path, records)
    assert path.name == f"qatysu-{DEVICE}-5-8.json"
    code, out, _ = run(capsys, str(path))
    assert code == 0 and "seq 5..8" in out
    # A bundle starting at seq 1 must start from 64 zeros.
    first = resign({**chain(1)[0], "prev": "ab" * 32})
    path = write_bundle(tmp_path, [first])
    code, out, _ = run(capsys, str(path))
    assert code == 1 and "BROKEN at seq 1: link:" in out
