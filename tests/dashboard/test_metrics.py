"""`metrics` (the /metrics text): parsed with prometheus_client's parser, equal to the status files and DBs,
monotonic across an uploader restart; and docs/grafana-dashboard.json queries only metrics that exist."""
from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sensor_manager.cli import app
from sensor_manager.simulator import db as edge_schema

GRAFANA = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
CONFIG = "project: metrics-test\nsensors_per_city: 2\ncities:\n  - name: Amsterdam\n  - name: São Paulo\n"


def samples(runner, project: Path) -> dict[tuple, float]:
    result = runner.invoke(app, ["metrics", "--project-dir", str(project)])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(result.stdout) for s in family.samples}


def value(found: dict, name: str, **labels) -> float:
    matches = [v for (n, l), v in found.items() if n == name and all(dict(l).get(k) == w for k, w in labels.items())]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


def upload(project: Path, city: str) -> None:
    subprocess.run([sys.executable, "-m", "uploader", "--sqlite", str(project / "data" / city), "--project-dir", str(project), "--once"],
                   check=True, capture_output=True, timeout=120)


def add_spikes(path: Path, count: int) -> None:
    """Append `count` readings flagged as spikes after the simulator's own (the simulation has ended)."""
    conn = sqlite3.connect(path)
    last, ts_ms = conn.execute("SELECT seq, ts_ms FROM readings ORDER BY seq DESC LIMIT 1").fetchone()
    conn.executemany(edge_schema.INSERT_READING_SQL, [(last + i, ts_ms + i, 0, 1, 90.0, 50.0, 1013.0, 2.5, 12.0, edge_schema.ANOMALY_CODES["spike"])
                                                       for i in range(1, count + 1)])
    conn.commit()
    conn.close()


def db_facts(project: Path, city: str) -> tuple[int, int]:
    """(rows, readings flagged as an anomaly) over the city's DBs."""
    rows = anomalies = 0
    for path in (project / "data" / city).glob("*/sensor_data.db"):
        conn = sqlite3.connect(path)
        rows += conn.execute("SELECT count(*) FROM readings").fetchone()[0]
        anomalies += conn.execute("SELECT count(*) FROM readings WHERE anomaly != 0").fetchone()[0]
        conn.close()
    return rows, anomalies


@pytest.mark.slow
def test_metrics_equal_the_status_files_and_never_go_down_across_an_uploader_restart(runner, project_dir):
    (project_dir / "sensor-manager.yaml").write_text(CONFIG)
    assert runner.invoke(app, ["simulate", "--project-dir", str(project_dir), "--backfill", "120s", "--duration", "0.5", "--rate", "5"]).exit_code == 0
    add_spikes(next((project_dir / "data" / "Amsterdam").glob("*/sensor_data.db")), 3)
    upload(project_dir, "Amsterdam")
    first = samples(runner, project_dir)

    status = json.loads((project_dir / "state" / "status" / "uploader-amsterdam.json").read_text())
    positions = [s["positions"]["delta"] for s in status["sources"]]
    labels = {"component_id": "uploader-amsterdam", "city": "Amsterdam"}
    assert value(first, "component_received_events_total", component_kind="source", component_type="sqlite", **labels) == sum(positions)
    assert value(first, "component_sent_events_total", component_kind="sink", component_type="delta", **labels) == sum(positions) \
        == status["sinks"]["delta"]["rows_shipped"]
    assert value(first, "component_discarded_events_total", component_type="delta", intentional="false", **labels) == 0
    assert value(first, "buffer_size_events", component_type="delta", **labels) == 0
    rows, anomalies = db_facts(project_dir, "Amsterdam")
    assert value(first, "sensor_readings_total", component_id="sensor-amsterdam", city="Amsterdam") == rows == sum(positions)
    assert value(first, "sensor_anomalies_total", city="Amsterdam", type="spike") >= 3
    assert sum(v for (n, l), v in first.items() if n == "sensor_anomalies_total" and dict(l)["city"] == "Amsterdam") == anomalies
    watched = json.loads(runner.invoke(app, ["monitor", "--project-dir", str(project_dir), "--once", "--json"]).stdout)
    assert value(first, "sensors_running", city="Amsterdam") == watched["cities"][0]["sensors_running"]
    sao_paulo = {"component_id": "uploader-sao-paulo", "city": "Sao_Paulo"}
    assert value(first, "component_sent_events_total", component_type="delta", **sao_paulo) == 0
    assert value(first, "buffer_size_events", component_type="delta", **sao_paulo) == db_facts(project_dir, "Sao_Paulo")[0]

    # More readings, then the uploader runs again as a new process (its in-memory counts start at zero).
    assert runner.invoke(app, ["simulate", "--project-dir", str(project_dir), "--duration", "1", "--rate", "5"]).exit_code == 0
    upload(project_dir, "Amsterdam")
    second = samples(runner, project_dir)
    restarted = json.loads((project_dir / "state" / "status" / "uploader-amsterdam.json").read_text())
    assert restarted["sinks"]["delta"]["rows_shipped"] < status["sinks"]["delta"]["rows_shipped"]  # the in-memory count did restart
    counters = [key for key in first if key[0].endswith("_total")]
    assert counters and all(second[key] >= first[key] for key in counters)
    assert value(second, "component_sent_events_total", component_type="delta", **labels) > value(first, "component_sent_events_total", component_type="delta", **labels)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression reads: identifiers that are not functions, keywords, labels or durations."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr))
    return {n for n in names if not n.startswith("$") and n not in {"bool", "and", "or", "unless", "offset"}}


def test_grafana_dashboard_queries_only_metrics_in_the_exposition(runner, project_dir):
    (project_dir / "sensor-manager.yaml").write_text("project: grafana\nsensors_per_city: 1\ncities:\n  - name: Amsterdam\n")
    assert runner.invoke(app, ["simulate", "--project-dir", str(project_dir), "--backfill", "5s", "--duration", "0.2"]).exit_code == 0
    exposed = {name for name, _ in samples(runner, project_dir)}
    dashboard = json.loads(GRAFANA.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [re.sub(r"label_values\(([^,)]*).*", r"\1", v["query"] if isinstance(v["query"], str) else v["query"]["query"])
              for v in dashboard["templating"]["list"] if v.get("type") == "query"]
    used = set().union(*(promql_metric_names(e) for e in exprs))
    assert used and used <= exposed, used - exposed
    assert promql_metric_names('sum by (city) (rate(component_sent_events_total{component_kind="sink"}[5m]))') == {"component_sent_events_total"}
