"""The uploader: read sensor DBs read-only, run a stage, ship each reading exactly once to every sink."""
