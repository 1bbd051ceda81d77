"""sensor-manager: simulated edge sensors, SQLite edge buffers, exactly-once uploaders, a Delta lake."""
__version__ = "0.1.0"
