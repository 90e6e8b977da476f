"""The errors an operator sees as one plain sentence, never as a traceback."""
from __future__ import annotations

from leadflow.intake.readers import IntakeFileError
from leadflow.orgfile import OrgFileError
from leadflow.policy import PolicyError
from leadflow.privacy import mask_phones_in_text
from leadflow.scenario import ScenarioError
from leadflow.engine import ClockError
from leadflow.stages.intake import StageFailure
from leadflow.stages.people import OrgError
from leadflow.stages.validation import ValidationFailure
from leadflow.start import ServerUnavailable
from leadflow.store.db import StoreError



class ArgumentError(ValueError):
    """A bad command-line argument or option value: one sentence, exit 2."""


USER_ERRORS = (ArgumentError, IntakeFileError, OrgFileError, PolicyError, ScenarioError, ClockError, StageFailure,
               OrgError, StoreError, ValidationFailure, ServerUnavailable)


def one_line(e: BaseException) -> str:
    """The first line of an error, with any phone number masked (R-REG-7)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return mask_phones_in_text(text)
