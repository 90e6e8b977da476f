"""`flow` and `task` as LeadFlow declares them: Prefect's, with every exception's text masked (R-REG-7).

Prefect turns an exception into a Failed state's message and persists the exception itself as the run's
result; both are stored in Prefect's database and PREFECT_HOME. An error raised with a phone number in its
text (a value echoed by a parser, a file name) is masked in place before Prefect sees it, whatever the
error's type. Database errors are also masked where they start (leadflow.store.db's error listener).
"""
from __future__ import annotations

import functools
import inspect

import prefect

from leadflow.privacy import mask_exception


def _masked(fn):
    if inspect.iscoroutinefunction(fn):
        raise TypeError("LeadFlow's flows and tasks are synchronous")

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise mask_exception(e)
    # Prefect builds its parameter model from the signature: give it the annotations evaluated in the
    # function's own module (this module does not know `dt`), so `as_of: dt.datetime` stays a datetime.
    run.__signature__ = inspect.signature(fn, eval_str=True)
    run.__annotations__ = inspect.get_annotations(fn, eval_str=True)
    return run


def task(fn=None, /, **options):
    """prefect.task over a masked function; used exactly like it (`@task(name=…, retries=…)`)."""
    if fn is None:
        return lambda f: prefect.task(_masked(f), **options)
    return prefect.task(_masked(fn), **options)


def flow(fn=None, /, **options):
    """prefect.flow over a masked function; used exactly like it (`@flow(name=…)`)."""
    if fn is None:
        return lambda f: prefect.flow(_masked(f), **options)
    return prefect.flow(_masked(fn), **options)
