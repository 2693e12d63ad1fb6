"""``planlab`` console script: the Typer app and the one place where errors become exit codes."""

from __future__ import annotations

import sys

import typer

from planlab import __version__
from planlab.cli._common import err_console

app = typer.Typer(
    name="planlab",
    help="planlab: synthetic NAVSIM-format data, PDM scoring, planner training and experiments on SLURM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """planlab: synthetic NAVSIM-format data, PDM scoring, planner training and experiments on SLURM."""


@app.command("version")
def version() -> None:
    """Print the planlab version."""
    typer.echo(__version__)


# Sub-command groups, an explicit list (DESIGN.md: registries are explicit).
# (name, module) pairs are imported here; each module exposes ``app`` (a Typer group) or ``register(app)``.
def _register() -> None:
    import importlib

    for module_name in _COMMAND_MODULES:
        module = importlib.import_module(f"planlab.cli.{module_name}")
        module.register(app)


_COMMAND_MODULES: list[str] = [
    "data",
    "train",
    "exp",
    "ckpt",
    "eval",
    "agents",
    "cache",
    "logs",
    "smoke",
    "ssl",
    "study",
]

_register()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a :class:`~planlab.errors.PlanlabError` prints one line and exits non-zero."""
    from planlab.errors import PlanlabError

    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="planlab", standalone_mode=True)
    except PlanlabError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
