"""The `leadflow` Typer application and its sub-groups; the commands attach themselves in their modules."""
from __future__ import annotations

import typer

app = typer.Typer(name="leadflow", help="Fair, on-the-record lead allocation.", no_args_is_help=True,
                  pretty_exceptions_enable=False,  # a rich traceback would print locals: phones (R-REG-7)
                  context_settings={"help_option_names": ["-h", "--help"]})
db_app = typer.Typer(help="The database.", no_args_is_help=True)
org_app = typer.Typer(help="The org chart.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(org_app, name="org")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"leadflow {version('leadflow')}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """Fair, on-the-record lead allocation: `leadflow COMMAND --help` for each command."""
