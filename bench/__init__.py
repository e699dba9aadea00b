"""The benchmark behind ``performance.py``, apart from the marketplace it measures.

Imports run one way: ``performance.py`` -> ``bench`` -> ``market`` / ``protocol``.

    loadgen     simulated sellers and buyers, load runs in generator processes, progress
    report      summaries over runs (CPU per ok operation, Stats counted), results, tables
    deploy      the services a benchmark run starts and measures (CPU, RSS)
    echo        the echo chain (client -> relay -> echo), the yardstick of the same stack
    target      a running market under --target: its frontends, its services' Stats
    preload     the data-size benchmark: markets of a chosen size, single ops timed
    charts      the benchmark's charts
"""
