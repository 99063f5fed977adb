"""``qatysu-portal serve``: run the portal under uvicorn."""

from __future__ import annotations

import logging

import click

from portal.cli.base import Context, cli


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--access-log/--no-access-log", default=True, show_default=True, help="Log every request."
)
@click.pass_obj
def serve_command(ctx: Context, host: str, port: int, access_log: bool) -> int:
    """Run the portal: migrate the store, load or create the key, serve HTTP."""
    import uvicorn

    from portal.app import create_app
    from portal.http_server import server_config
    from portal.reconcile.lessons import load_zone

    load_zone(ctx.settings().tz)  # stale zone data: refuse before touching the store
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    portal = ctx.portal()
    app = create_app(portal.settings, portal=portal)
    click.echo(f"portal key {portal.public_key}", err=True)
    config = server_config(
        app, host=host, port=port, settings=portal.settings, access_log=access_log
    )
    uvicorn.Server(config).run()
    return 0
