"""Thin Prefect tasks over leadflow.stages: each takes a batch, returns counts; retries only around I/O."""
