"""``qatysu-portal serve``: run the portal under uvicorn."""

from __future__ import annotations

import errno
import logging
import os
import socket

import click

from portal.cli.base import Context, Exit, cli


def listen_socket(host: str, port: int) -> socket.socket:
    """The bound server socket, or one line saying why the address cannot be had.

    Bound here rather than by uvicorn, whose own bind logs the error over several
    lines, shuts the application down and exits 3.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = (
            " (is another portal running? choose --port)" if exc.errno == errno.EADDRINUSE else ""
        )
        raise Exit(f"{host}:{port}: cannot listen: {exc.strerror or exc}{hint}") from exc
    sock.set_inheritable(True)  # the workers inherit it
    return sock


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--access-log/--no-access-log", default=True, show_default=True, help="Log every request."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Portal processes on the one socket (more than 1 needs PostgreSQL).",
)
@click.pass_obj
def serve_command(ctx: Context, host: str, port: int, access_log: bool, workers: int) -> int:
    """Run the portal: migrate the store, load or create the key, serve HTTP."""
    import uvicorn

    from portal.app import create_app
    from portal.http_server import server_config
    from portal.reconcile.lessons import load_zone

    settings = ctx.settings()
    if workers > 1 and settings.is_sqlite:
        # SQLite's write lock is held inside one process: N processes would interleave writes.
        raise click.UsageError(f"--workers {workers} needs PostgreSQL (--db); SQLite serves one")
    load_zone(settings.tz)  # stale zone data: refuse before touching the store
    sock = listen_socket(host, port)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        portal = ctx.portal()
    except BaseException:
        sock.close()
        raise
    click.echo(f"portal key {portal.public_key}", err=True)
    click.echo(f"listening on http://{host}:{port}", err=True)  # uvicorn's line needs its bind
    if workers == 1:
        app = create_app(portal.settings, portal=portal)
        config = server_config(
            app, host=host, port=port, settings=portal.settings, access_log=access_log
        )
        uvicorn.Server(config).run(sockets=[sock])
        return 0
    # Several processes: the store is migrated and the key made (above); each worker
    # opens its own portal from the same environment (portal.app.worker_app).
    os.environ["QATYSU_PORTAL_DATA_DIR"] = str(portal.settings.data_dir)
    os.environ["QATYSU_PORTAL_DB"] = portal.settings.db_url
    ctx.close()
    config = server_config(
        "portal.app:worker_app",
        host=host,
        port=port,
        settings=settings,
        access_log=access_log,
        factory=True,
        workers=workers,
    )
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=[sock]).run()
    return 0
