"""``qatysu-portal`` operator defects of issue 19: data dir, read commands, ids, codes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from portal.cli import main
from tests.cli.readonly import run_read_only


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_data_dir_comes_from_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QATYSU_PORTAL_DATA_DIR", str(tmp_path / "real"))
    assert run(capsys, "center", "add", "c1", "--name", "One")[0] == 0
    assert (tmp_path / "real" / "portal.sqlite3").exists()
    assert not (tmp_path / "portal-data").exists()
    assert run(capsys, "center", "list")[1] == "c1\tOne\t-\n"


def test_read_commands_never_create_a_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = tmp_path / "nothing"
    for command in (["admin-token", "list"], ["center", "list"], ["enroll-token", "list"]):
        code, out, err = run(capsys, "--data-dir", str(empty), *command)
        assert code == 2 and out == ""
        assert err.startswith("qatysu-portal: error: no portal database at ")
        assert len(err.strip().splitlines()) == 1
    assert not empty.exists()


def test_empty_lists_say_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    d = ["--data-dir", str(tmp_path / "pd")]
    assert run(capsys, *d, "center", "add", "c1", "--name", "One")[0] == 0
    assert run(capsys, *d, "admin-token", "list") == (
        0,
        "",
        "no admin tokens (create one with 'admin-token create')\n",
    )
    assert run(capsys, *d, "enroll-token", "list") == (0, "", "no enrollment tokens\n")


def test_center_ids_that_need_escaping_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    d = ["--data-dir", str(tmp_path / "pd")]
    for bad in ("bad id/x", "a/b", "_x", "x" * 65, "ц1"):
        code, _, err = run(capsys, *d, "center", "add", bad, "--name", "Bad")
        assert code == 2 and "center id" in err, bad
    assert run(capsys, *d, "center", "add", "Club-7.a_b", "--name", "Ok")[0] == 0


def test_enroll_token_list_and_revoke(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    d = ["--data-dir", str(tmp_path / "pd")]
    assert run(capsys, *d, "center", "add", "c1", "--name", "One")[0] == 0
    assert run(capsys, *d, "enroll-token", "create", "--center", "c1")[0] == 0
    code, out, _ = run(capsys, *d, "enroll-token", "list")
    token_id, center, state = out.strip().split("\t")
    assert code == 0 and center == "c1" and state == "live" and len(token_id) == 12
    assert run(capsys, *d, "enroll-token", "revoke", token_id)[0] == 0
    assert run(capsys, *d, "enroll-token", "list")[1].endswith("\texpired\n")
    code, _, err = run(capsys, *d, "enroll-token", "revoke", token_id)
    assert code == 2 and "no live unused enrollment token" in err
    assert run(capsys, *d, "enroll-token", "revoke", "xyz")[0] == 2


def test_exit_codes_follow_one_convention(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """0 ok, 1 failure, 2 usage or invalid input (an unknown or existing id included)."""
    d = ["--data-dir", str(tmp_path / "pd")]
    assert run(capsys, *d, "center", "add", "c1", "--name", "One")[0] == 0
    assert run(capsys, *d, "center", "add", "c1", "--name", "Again")[0] == 2
    assert run(capsys, *d, "enroll-token", "create", "--center", "nowhere")[0] == 2
    assert run(capsys, *d, "device", "revoke", "dev-none")[0] == 2
    assert run(capsys, *d, "admin-token", "revoke", "nobody")[0] == 1
    assert run(capsys, *d, "no-such-command")[0] == 2
    assert run(capsys, *d, "center", "add")[0] == 2
    assert run(capsys, *d, "import-bundle", str(tmp_path / "missing.json"))[0] == 1


def test_generate_city_refuses_existing_centers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    d = ["--data-dir", str(tmp_path / "pd")]
    assert run(capsys, *d, "center", "add", "C001", "--name", "Real club")[0] == 0
    code, _, err = run(capsys, *d, "generate-city", "--centers", "1", "--days", "1")
    assert code == 2 and "center C001 already exists" in err and "--into-existing" in err
    assert run(capsys, *d, "center", "list")[1] == "C001\tReal club\t-\n"


def test_import_roster_counts_file_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """One line is one membership and one badge: counted once (it said "-1 unchanged")."""
    d = ["--data-dir", str(tmp_path / "pd")]
    assert run(capsys, *d, "center", "add", "c1", "--name", "One")[0] == 0
    schedule = tmp_path / "s.csv"
    schedule.write_text(
        "group_id,center_id,weekday,start,end,price_kzt\ng1,c1,1,15:00,16:00,1000\n"
        "g2,c1,2,15:00,16:00,1000\n"
    )
    assert run(capsys, *d, "import", "schedule", str(schedule))[0] == 0
    roster = tmp_path / "r.csv"
    head = "child_id,badge_uid,center_id,group_id\n"

    def load(*lines: str) -> str:
        roster.write_text(head + "".join(f"{line}\n" for line in lines))
        code, out, err = run(capsys, *d, "import", "roster", str(roster))
        assert code == 0, err
        return out.strip().removeprefix(f"{roster}: ")

    assert load("k1,04AA0001,c1,g1") == "1 roster rows, 1 added, 0 changed, 0 unchanged"
    assert load("k1,04AA0001,c1,g1") == "1 roster rows, 0 added, 0 changed, 1 unchanged"
    # A second badge for k1 in g1 and k2 new: two added, the first line unchanged.
    assert load("k1,04AA0001,c1,g1", "k1,04AA0002,c1,g1", "k2,04AA0003,c1,g2") == (
        "3 roster rows, 2 added, 0 changed, 1 unchanged"
    )
    # Badge 04AA0002 moves to k2: that line changed, the others as stored.
    assert load("k1,04AA0001,c1,g1", "k2,04AA0002,c1,g2", "k2,04AA0003,c1,g2") == (
        "3 roster rows, 0 added, 1 changed, 2 unchanged"
    )


def test_a_refused_import_line_is_invalid_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    d = ["--data-dir", str(tmp_path / "pd")]
    roster = tmp_path / "r.csv"
    roster.write_text("child_id,badge_uid,center_id,group_id\nk1,04AA0001,c1,g1\n")
    code, out, err = run(capsys, *d, "import", "roster", str(roster))
    assert (code, out) == (2, "")
    assert err == (
        f"qatysu-portal: error: {roster}:2:3: center_id: unknown center 'c1' "
        "(add it with 'qatysu-portal center add')\n"
    )


def test_a_database_that_cannot_be_reached_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    d = ["--data-dir", str(tmp_path / "pd")]
    url = f"postgresql://ops:secret@127.0.0.1:{port}/portal"
    code, out, err = run(capsys, *d, "--db", url, "center", "add", "c1", "--name", "One")
    assert (code, out) == (1, "")
    assert err.startswith(
        f"qatysu-portal: error: database postgresql://ops:***@127.0.0.1:{port}/portal: "
        "cannot connect: "
    )
    assert len(err.splitlines()) == 1 and "secret" not in err and "sqlalche.me" not in err
    code, _, err = run(capsys, *d, "--db", "mysql://x/y", "center", "list")
    assert code == 2 and len(err.splitlines()) == 1 and "mysql://" in err


def test_a_data_dir_that_is_a_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    where = tmp_path / "file" / "pd"
    code, _, err = run(capsys, "--data-dir", str(where), "center", "add", "c1", "--name", "x")
    assert code == 1
    assert err == (
        f"qatysu-portal: error: {where}: Not a directory: "
        "the data directory must be a writable directory\n"
    )


def test_a_read_only_data_dir_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "pd"
    assert run(capsys, "--data-dir", str(data), "center", "add", "c1", "--name", "One")[0] == 0
    # The data dir on a read-only mount (tests/cli/readonly.py: chmod stops no root).
    done = run_read_only(data, "portal", "--data-dir", data, "center", "add", "c2", "--name", "x")
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr == (
        f"qatysu-portal: error: {data / 'portal.sqlite3'}: cannot open the database: "
        f"unable to open database file; {data} is not writable (a read-only disk?)\n"
    )
    fresh = tmp_path / "ro"
    fresh.mkdir()
    done = run_read_only(fresh, "portal", "--data-dir", fresh / "pd", "center", "list")
    assert done.returncode == 2 and "no portal database at" in done.stderr
    done = run_read_only(
        fresh, "portal", "--data-dir", fresh / "pd", "center", "add", "c1", "--name", "x"
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"qatysu-portal: error: {fresh / 'pd'}: Read-only file system: "
        "the data directory must be a writable directory\n"
    )


def test_serve_on_a_port_in_use_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run(
            capsys, "--data-dir", str(tmp_path / "pd"), "serve", "--port", str(port)
        )
    assert (code, out) == (1, "")
    assert err == (
        f"qatysu-portal: error: 127.0.0.1:{port}: cannot listen: Address already in use "
        "(is another portal running? choose --port)\n"
    )
    assert not (tmp_path / "pd").exists()  # refused before the store was opened
