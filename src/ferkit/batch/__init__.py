"""`ferkit batch`: recognition over archives of photos and videos on Ray Data (job.py), in stages (stages.py),
into Parquet tables (tables.py) kept exact and resumable (store.py)."""
