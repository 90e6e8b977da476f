"""R-VAL-3 for a file of several batches: the run's state message (and a rejected file's `reason.txt` first line)
is one sentence, not one sentence per batch run together (found by last session's fresh-clone trial)."""
from __future__ import annotations

from flows.intake import refused_batches

ONE = "The intake batch failed validation as a whole: 25 of 25 rows (100%) are bad, above the 30% threshold."


def test_r_val_3_a_file_of_one_batch_keeps_its_batch_sentence():
    assert refused_batches([ONE], 1) == ONE


def test_r_val_3_every_batch_refused_is_one_sentence_naming_how_many_and_the_first_reason():
    msg = refused_batches([ONE, ONE.replace("25 of 25", "5 of 5"), ONE], 3)
    assert msg == ("3 of the file's 3 batches were refused as a whole (R-VAL-3), the first because the intake batch "
                   "failed validation as a whole: 25 of 25 rows (100%) are bad, above the 30% threshold.")
    assert "\n" not in msg


def test_r_val_3_some_batches_refused_say_how_many_of_the_file_and_that_the_others_were_registered():
    assert refused_batches([ONE], 4) == (
        "1 of the file's 4 batches was refused as a whole (R-VAL-3), the first because the intake batch failed "
        "validation as a whole: 25 of 25 rows (100%) are bad, above the 30% threshold; the other 3 batches were "
        "registered.")
    assert refused_batches([ONE, ONE], 3).endswith("; the other batch was registered.")
