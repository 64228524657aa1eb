"""Running the gateway like its peers: structured logs (logs.py), Prometheus metrics (metrics.py) and OpenTelemetry
tracing (tracing.py). The lowest layer: Flask and libraries only, no project package; the feature packages record
into it and fill its registry of scrape-time readings (metrics.add_reading)."""
