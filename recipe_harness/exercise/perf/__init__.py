"""The performance suite: aiperf against a deployed recipe, gated on its thresholds and baselines.

- :mod:`.profile`     the recipe's aiperf invocation as a typed :class:`~.profile.PerfProfile`; scaling
- :mod:`.runner`      runs aiperf (timeouts, process-group cleanup)
- :mod:`.results`     parses aiperf's exports into :class:`~.results.PointResult`
- :mod:`.stats`       estimates: sample counts, bootstrap confidence intervals, samples each percentile needs
- :mod:`.thresholds`  loads ``thresholds.yaml`` and gates estimates on a hardware profile (pass/fail/inconclusive)
- :mod:`.baseline`    stores and compares estimates across runs (a regression needs separate intervals)
- :mod:`.plots`       PNG figures for the HTML report
- :mod:`.check`       the whole perf check of one deployed recipe
"""
