"""The sink registry: the only list of sinks. Config, preflight, compose rendering, `clean`, `reset`,
status and monitor iterate it; each entry is the `SPEC` its module declares.

Adding a sink: one module with its settings model, sink class and `SPEC`, its line here, and a factory
in tests/uploader/sinks/conftest.py (the contract suite then runs on it).
"""
from __future__ import annotations

from uploader.sinks import cosmos, delta, parquet, s3
from uploader.sinks.base import SinkSpec

SINKS: dict[str, SinkSpec] = {spec.name: spec for spec in (delta.SPEC, parquet.SPEC, s3.SPEC, cosmos.SPEC)}
