"""`goldsmith serve-model`: an OpenAI-compatible endpoint for a completed run's tuned model, with its model card."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli_common import DEFAULT_DB, DbOption, open_store

if TYPE_CHECKING:
    from training.serving import ServedModel


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve_model_command(
    run_id: Annotated[
        str | None,
        typer.Argument(
            help="A completed run (id or unique prefix), or base:NAME to serve a base model; "
            "none: the team's current (promoted) model."
        ),
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="The port to listen on.")] = 8000,
    host: Annotated[
        str, typer.Option(help="The address to bind; 127.0.0.1 keeps the server on this machine (it has no authentication).")
    ] = "127.0.0.1",
    merge: Annotated[
        bool, typer.Option("--merge", help="Merge the adapter into the base model again, even if the run has merged/.")
    ] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Serve a run's tuned model over an OpenAI-compatible API (chat completions, streaming) with its model card.

    With no run it serves the promoted one (`goldsmith runs promote`). The adapter is merged into its base model
    once (RUN_DIR/merged) and served by transformers' server. Stop it with Ctrl+C.
    """
    from training.serving import serve

    if not _is_loopback(host):
        typer.echo(f"Warning: binding {host}: anyone who can reach it can use the model; there is no authentication.", err=True)

    def ready(served: ServedModel) -> None:
        base = f"http://{host}:{port}"
        typer.echo(
            f"Serving {served.name} ({served.folder}) at {base}/v1 as model {served.name!r}; "
            f"card at {base}/v1/models/{served.name}/card. Ctrl+C stops it.",
            err=True,
        )

    serve(open_store(db), run_id, host, port, merge, on_ready=ready)
