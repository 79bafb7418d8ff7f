"""`goldsmith serve`: start the Streamlit app on a store.

It runs app/web/asgi.py: Streamlit's server (st.App) with Goldsmith's session-cookie route beside the
pages of app/main.py. Streamlit is imported only by the process this command becomes, so
`goldsmith --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli_common import DEFAULT_DB, DbOption, open_store

MAIN = Path(__file__).resolve().parent / "web" / "asgi.py"


def streamlit_argv(port: int, host: str) -> list[str]:
    """The command line that runs the app: headless, XSRF protection on, no usage statistics."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(MAIN),
        f"--server.port={port}",
        f"--server.address={host}",
        "--server.headless=true",
        "--server.enableXsrfProtection=true",
        "--server.enableCORS=true",
        "--server.fileWatcherType=none",
        "--runner.magicEnabled=false",  # pages write what they mean to show; a bare expression shows nothing
        # Streamlit's default collects all garbage after every run: with the embedding model and the
        # live duplicate index loaded that walk alone is ~120 ms of every page (Python's own,
        # generational collections still run)
        "--runner.postScriptGC=false",
        "--browser.gatherUsageStats=false",
        "--client.toolbarMode=minimal",
        "--theme.base=light",
    ]


def serve_command(
    db: DbOption = DEFAULT_DB,
    port: Annotated[int, typer.Option(min=1, max=65535, help="The port to listen on.")] = 8501,
    host: Annotated[str, typer.Option(help="The address to bind; 127.0.0.1 keeps the app on this machine.")] = "127.0.0.1",
) -> None:
    """Run the Goldsmith app (Streamlit) on a store: http://HOST:PORT. Stop it with Ctrl+C."""
    open_store(db).close()  # refuse a missing or foreign file before starting a server on it
    env = {**os.environ, "GOLDSMITH_DB": str(db.resolve())}
    typer.echo(f"Goldsmith app on http://{host}:{port} (store {db}); Ctrl+C stops it.", err=True)
    argv = streamlit_argv(port, host)
    sys.stdout.flush()
    os.execve(argv[0], argv, env)  # become the server: signals reach it directly
