"""The browser dashboard and the Prometheus metrics: `server` (Starlette app), `feed` (what the page gets), `metrics`."""
