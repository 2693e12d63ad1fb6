"""``planlab agents list``: the registered planners (name, trainable, privileged, description)."""

from __future__ import annotations

import typer

from planlab.cli._common import console, print_json

agents_app = typer.Typer(name="agents", help="Registered planning agents.", no_args_is_help=True)


@agents_app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every agent of the registry (no agent module is imported)."""
    from planlab.agents.registry import list_agents

    specs = list_agents()
    if as_json:
        print_json(
            [
                {
                    "name": s.name,
                    "trainable": s.trainable,
                    "privileged": s.privileged,
                    "description": s.description,
                }
                for s in specs
            ]
        )
        return
    from rich.table import Table

    table = Table("name", "trainable", "privileged", "description")
    for s in specs:
        table.add_row(s.name, "yes" if s.trainable else "no", "yes" if s.privileged else "no", s.description)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(agents_app, name="agents")
