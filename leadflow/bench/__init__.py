"""`leadflow bench`: how fast LeadFlow is beside the database's own speed, measured in one run (issue 10).

- `generate`: N realistic registration rows from a fixed seed, streamed to files (the pipeline's file, and the
  same rows with a numeric amount for the raw baseline), and the owners' first activity as event files;
- `baseline`: the raw database on the same server: COPY, one tier UPDATE with CASE, one round-robin INSERT…SELECT;
- `latency`: single registrations through `register_lead` (alone, and 10 callers at once) and the intake flow;
- `run`: the real path (`leadflow.engine.register_file`, event files, an SLA tick, the timed stages), the baseline,
  the latency, and the figures (`bench`, `render`).

`leadflow.bench.replay` (a year's replay) and `leadflow.bench.timed` (the time-driven stages beside one SQL
statement each) are measured by the same command when present.
"""
