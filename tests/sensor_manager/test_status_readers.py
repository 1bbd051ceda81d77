"""Status files are read through their models (`StatusDocument.read` and its subclasses, `SupervisorState.read`),
never as raw dicts: a reader that indexes the JSON itself drifts from the writer's shape unnoticed."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fleetcore", "sensor_manager", "uploader", "benchmarks")


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield str(path.relative_to(ROOT)), path.read_text()


def test_only_the_status_file_helper_reads_raw_status_documents():
    """`read_json_object` is the careful JSON reader under the models: outside a model's `read` it reads
    only the supervisor's spec (its desired state, not a status file)."""
    import ast

    raw_readers = []
    for name, text in _sources():
        for function in ast.walk(ast.parse(text)):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) or function.name == "read":
                continue
            for call in ast.walk(function):
                if (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "read_json_object"
                        and "spec_path(" not in ast.unparse(call)):
                    raw_readers.append(f"{name}:{call.lineno} {function.name}")
    assert raw_readers == []


def test_supervisor_state_is_read_only_through_its_model():
    raw_readers = [name for name, text in _sources() if "read_json(state_path(" in text or "read_json(sv.state_path(" in text]
    assert raw_readers == []
