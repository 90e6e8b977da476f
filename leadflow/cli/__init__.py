"""The `leadflow` command (Typer + Rich): `main(argv)` runs it and returns the exit code.

Exit codes: 0 done; 1 the work failed (a flow run, the database: one sentence); 2 the input was refused (a bad
option, file, date or id: one sentence naming it, never a usage box or a traceback); 130 interrupted.
`LEADFLOW_DEBUG=1` shows the traceback of a database error or a bug instead of its sentence.
"""
from __future__ import annotations

import logging
import os
import sys

import typer
from typer.exceptions import TyperException
from sqlalchemy.exc import SQLAlchemyError

from leadflow.cli import bench, ledger, local, run  # noqa: F401  (the commands attach themselves to `app`)
from leadflow.cli.app import app
from leadflow.cli.output import Failure, fail_line
from leadflow.errors import USER_ERRORS, one_line
from leadflow.intake.cells import without_surrogates

PROG = "leadflow"


def _usage(e: TyperException) -> str:
    """A usage error (unknown option, missing argument, bad choice) as one sentence pointing at the help."""
    message = " ".join(e.format_message().split()).rstrip(".").replace("Value error, ", "")  # pydantic's prefix
    ctx = getattr(e, "ctx", None)
    path = ctx.command_path if ctx is not None else PROG
    return f"{message[:1].lower()}{message[1:]} (see '{path} --help')."


def _setup_logging() -> None:
    logging.basicConfig(level=os.environ.get("LEADFLOW_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    from leadflow.privacy import install_log_masking  # R-REG-7: every handler, Prefect's too; uncaught errors

    install_log_masking()


def main(argv: list[str] | None = None) -> int:
    """Run `leadflow` with `argv` (default: the process's arguments); returns the exit code."""
    _setup_logging()
    args = sys.argv[1:] if argv is None else list(argv)
    if (bad := _not_text(args)) is not None:
        return _fail(bad, 2)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name=PROG, standalone_mode=False)
    except typer.Abort:  # end of input at a prompt
        return _fail("interrupted.", 130)
    except TyperException as e:  # Typer's (vendored Click's) usage errors: one sentence, never the usage box
        if type(e).__name__ == "NoArgsIsHelpError":  # `leadflow` or `leadflow db` alone: Typer printed the help
            return 2
        return _fail(_usage(e), 2)
    except Failure as e:
        return _fail(str(e), e.code)
    except USER_ERRORS as e:
        return _fail(one_line(e), 2)
    except SQLAlchemyError as e:  # issue 8.7: a database error is one sentence, never SQL and its parameters
        if os.environ.get("LEADFLOW_DEBUG"):
            raise
        from leadflow.store.transient import database_sentence

        return _fail(database_sentence(e), 1)
    except Exception as e:  # a bug: one line saying so; LEADFLOW_DEBUG=1 shows the traceback
        if os.environ.get("LEADFLOW_DEBUG"):
            raise
        return _fail(f"unexpected error, a bug in LeadFlow ({type(e).__name__}: {one_line(e)}); run it again "
                     "with LEADFLOW_DEBUG=1 to see where.", 1)
    if code == 130:  # Typer turns Ctrl-C into exit 130 before it reaches us
        return _fail("interrupted.", 130)
    return code if isinstance(code, int) else 0


def _not_text(args: list[str]) -> str | None:
    """One sentence for the first argument holding bytes that are not UTF-8 (Python keeps them as lone surrogates,
    which no database, file name check or Prefect request takes), else None. The argument is not quoted: it may be
    a phone number (R-REG-7)."""
    for i, arg in enumerate(args, start=1):
        if without_surrogates(arg)[1]:
            return (f"argument {i} holds bytes that are not UTF-8 text; LeadFlow takes arguments in UTF-8 (a file "
                    "whose name is not UTF-8: rename it).")
    return None


def _fail(message: str, code: int) -> int:
    fail_line(message)
    return code


if __name__ == "__main__":
    sys.exit(main())
