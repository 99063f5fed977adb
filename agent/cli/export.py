"""``qatysu export DIR`` and ``qatysu ack FILE``: the offline path on the device."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import click

from agent.cli.base import Context, Exit, cli
from agent.cli.state import require_key, state_dir_errors
from agent.config import AgentConfig, load_config
from agent.control import ControlClient, daemon_running
from agent.daemon.commands import export_answer
from agent.daemon.daemon import check_enrolled, outbox
from agent.durable import replace_file


def _daemon(config: AgentConfig) -> ControlClient | None:
    """The running daemon's client; None when the buffer may be opened here."""
    path = config.device.control_socket
    return ControlClient(path, timeout_s=120.0) if daemon_running(path) else None


@cli.command("export")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.pass_obj
def export_command(ctx: Context, directory: Path, as_json: bool) -> int:
    """Write the pending records to a bundle file in DIRECTORY (e.g. a USB stick).

    Nothing is freed: take the file to the city, where 'qatysu-portal
    import-bundle FILE --receipt-out R' stores it, then run 'qatysu ack R' here.
    While 'qatysu run' runs, the daemon writes the file into its outbox and
    this command copies it to DIRECTORY.
    """
    from agent.uplink.offline import export_bundle

    config = load_config(ctx.config_path)
    check_enrolled(config)
    folder = directory.resolve()
    if not folder.exists():
        raise Exit(f"{directory}: no such directory (is the USB stick mounted?)", 2)
    if not folder.is_dir():
        raise Exit(f"{directory}: not a directory", 2)
    client = _daemon(config)
    if client is not None:
        # The daemon writes into its outbox; this process, with the
        # technician's rights, copies the file to the stick.
        box = outbox(config)
        result = client.request("export", dir=str(box))
        owner = config.device.state_dir.stat().st_uid
        result["path"] = str(_move_out(result.get("path"), box, owner, folder))
    else:
        from agent.records.store import open_store

        require_key(config)
        with state_dir_errors(config, debug=ctx.debug):
            store = open_store(config)
            try:
                path = export_bundle(store, folder)
                count = store.pending_count
            finally:
                store.close()
        result = export_answer(path, count)
    _report(
        result,
        as_json,
        f"wrote {result['path']}: {result['count']} records, "
        f"seq {result['first_seq']}..{result['last_seq']}",
    )
    return 0


def _report(result: dict[str, Any], as_json: bool, line: str) -> None:
    click.echo(json.dumps(result) if as_json else line)


def _move_out(answer: object, box: Path, owner: int, folder: Path) -> Path:
    """Copy the bundle the daemon named into ``folder`` durably (temporary name,
    fsync, rename), then remove it from the outbox.

    This process may be root and the daemon's answer is not to be trusted (a
    compromised agent could name /etc/shadow): only a plain regular file inside
    the outbox, owned by the buffer's owner and linked once, is read or removed.
    """
    box_fd, fd, name = _open_staged(answer, box, owner)
    try:
        target = folder / name
        try:
            replace_file(target, iter(lambda: os.read(fd, 1 << 20), b""))
        except OSError as exc:
            raise Exit(f"{target}: cannot write the bundle: {exc.strerror or exc}") from exc
        try:
            here = os.stat(name, dir_fd=box_fd, follow_symlinks=False)
            copied = os.fstat(fd)
            if (here.st_dev, here.st_ino) == (copied.st_dev, copied.st_ino):
                os.unlink(name, dir_fd=box_fd)  # a name in the outbox, never followed
        except OSError as exc:
            click.echo(
                f"qatysu: warning: {box / name}: left in the outbox: {exc.strerror}", err=True
            )
        return target
    finally:
        os.close(fd)
        os.close(box_fd)


def _open_staged(answer: object, box: Path, owner: int) -> tuple[int, int, str]:
    """(outbox fd, bundle fd, file name) for the path the daemon answered, or Exit."""

    def refuse(why: str) -> Exit:
        return Exit(f"the daemon named {answer!r} as the bundle: {why}; nothing copied")

    if not isinstance(answer, str):
        raise refuse("not a path")
    staged = Path(answer)
    name = staged.name
    if staged.parent != box or name in ("", ".", "..") or name.startswith("."):
        raise refuse(f"not a file name inside the outbox {box}")
    try:
        box_fd = os.open(box, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise refuse(f"the outbox {box} is not a folder ({exc.strerror})") from exc
    try:
        if os.fstat(box_fd).st_uid != owner:
            raise refuse(f"the outbox {box} is not owned by uid {owner}, the buffer's owner")
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
        try:
            fd = os.open(name, flags, dir_fd=box_fd)
        except OSError as exc:
            why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
            raise refuse(f"cannot be opened ({why})") from exc
        st = os.fstat(fd)
        problem = ""
        if not stat.S_ISREG(st.st_mode):
            problem = "not a regular file"
        elif st.st_uid != owner:
            problem = f"owned by uid {st.st_uid}, not uid {owner}, the buffer's owner"
        elif st.st_nlink != 1:
            problem = f"it has {st.st_nlink} links (a hard link to another file)"
        if problem:
            os.close(fd)
            raise refuse(problem)
    except BaseException:
        os.close(box_fd)
        raise
    return box_fd, fd, name


@cli.command("ack")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.pass_obj
def ack_command(ctx: Context, file: Path, as_json: bool) -> int:
    """Apply a receipt FILE written by 'qatysu-portal import-bundle --receipt-out'.

    The receipt must be signed by the pinned portal key and name a record this
    device holds; otherwise nothing is freed, an alarm record is written and
    the command fails.
    """
    from agent.uplink.offline import apply_receipt_file, read_receipt_file

    config = load_config(ctx.config_path)
    check_enrolled(config)
    client = _daemon(config)
    result: dict[str, Any]
    if client is not None:
        result = client.request("ack", receipt=read_receipt_file(file))
    else:
        from agent.records.store import open_store

        require_key(config)
        with state_dir_errors(config, debug=ctx.debug):
            store = open_store(config)
            try:
                freed = apply_receipt_file(store, file, config.portal.public_key)
                result = {"freed": freed, "last_ack_seq": store.last_ack[0]}
            finally:
                store.close()
    _report(
        result,
        as_json,
        f"{file}: {result['freed']} records freed, acknowledged up to seq {result['last_ack_seq']}",
    )
    return 0
