"""One thin Prefect flow per stage, plus the whole lifecycle."""
