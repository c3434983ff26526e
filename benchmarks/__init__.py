"""The harness measuring itself: the load generator's cost (``benchmarks.loadgen``)
and the reports' speed at scale (``benchmarks.report_speed``)."""
