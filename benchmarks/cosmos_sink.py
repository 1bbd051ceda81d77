#!/usr/bin/env python3
"""Cosmos DB sink: documents/s of a backlog into the loopback Cosmos-protocol server, against a naive loop.

The backlog is canonical rows of SOURCES sensors, shipped as the pipeline ships them (batches of the
sink's batch_size, one part per source) through `CosmosSink`: the async client, one connection pool,
max_in_flight requests at once. baseline = documents/s of the loop most Python samples show, in the
same run against the same server: the blocking `CosmosClient`, `upsert_item` one document at a time.
The baseline runs on a sample (--naive-sample documents, default 400: at ~90 ms a document the full
backlog would take over an hour) and its rate is extrapolated to the backlog; its per-document cost
does not depend on how many documents came before. RU per document is what the server reports
(`x-ms-request-charge`; the local server charges 1 per request, position writes and queries included).
The server is @vercel/cosmosdb-server (Node, one thread) on this machine: both figures share its cores.
Prints a summary, or with --json one object {"name", "value", "baseline", "ratio", "unit", ...}.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import cosmos_server  # noqa: E402
from uploader.batch import Batch, Part  # noqa: E402
from uploader.sinks.base import Delivered  # noqa: E402
from uploader.sinks.cosmos import CosmosSink, CosmosSinkSettings, documents  # noqa: E402
from uploader.sinks.cosmos_client import sync_container  # noqa: E402
from uploader_sinks import SOURCES, app_id_of, canonical, lineage_of  # noqa: E402


def backlog(rows: int, batch_size: int) -> list[list[tuple[int, int, int, list]]]:
    per_source = rows // SOURCES
    step = max(1, batch_size // SOURCES)
    return [[(source, after, min(after + step, per_source), canonical(source, after + 1, min(after + step, per_source)))
             for source in range(SOURCES)] for after in range(0, per_source, step)]


def as_batch(spec) -> Batch:
    def part(source, after, upto, chunks) -> Part:
        return Part(app_id_of(source), after, upto, lineage_of(source), lambda rejected: iter(chunks))

    return Batch([part(*entry) for entry in spec])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rows", type=int, default=50_000, help="backlog readings (the issue's figure: 50000)")
    parser.add_argument("--naive-sample", type=int, default=400, help="documents the naive loop writes")
    parser.add_argument("--max-in-flight", type=int, default=CosmosSinkSettings().max_in_flight)
    args = parser.parse_args()

    server = cosmos_server.start()
    try:
        settings = CosmosSinkSettings(enabled=True, endpoint=server.endpoint, key=server.key, verify_tls=False,
                                      database_name=f"bench-{uuid.uuid4().hex[:8]}", max_in_flight=args.max_in_flight)
        batches = backlog(args.rows, settings.batch_size)
        rows = sum(upto - after for spec in batches for _, after, upto, _ in spec)

        sink = CosmosSink(settings)
        try:
            assert sink.check().ok
            started = time.perf_counter()
            for spec in batches:
                outcome = sink.write(as_batch(spec))
                if not isinstance(outcome, Delivered):
                    raise SystemExit(f"cosmos: {outcome}")
            rate = rows / (time.perf_counter() - started)
            usage = sink.usage.snapshot()
        finally:
            sink.close()

        naive_settings = settings.model_copy(update={"container_name": "Naive"})
        container = sync_container(naive_settings)
        sample = [doc for spec in batches for *_, chunks in spec for chunk in chunks for doc in documents(chunk)]
        sample = sample[:args.naive_sample]
        started = time.perf_counter()
        for doc in sample:
            container.upsert_item(doc)
        baseline = len(sample) / (time.perf_counter() - started)
    finally:
        server.stop()

    result = {"name": "cosmos_sink", "value": round(rate, 1), "baseline": round(baseline, 1),
              "ratio": round(rate / baseline, 2), "unit": "documents/s", "rows": rows, "naive_sample": len(sample),
              "max_in_flight": settings.max_in_flight, "ru_per_document": round(usage["request_units"] / rows, 3),
              "throttled": usage["throttled"]}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{rows:,} readings into the loopback Cosmos server")
    print(f"  sink (async, {settings.max_in_flight} in flight): {rate:,.1f} documents/s, {result['ru_per_document']} RU/document")
    print(f"  naive upsert_item loop ({len(sample)} documents, extrapolated): {baseline:,.1f} documents/s")
    print(f"  ratio {result['ratio']}x (target >= 5x)")


if __name__ == "__main__":
    main()
