"""The recipe-harness pytest plugin (entry point ``recipe_harness``).

One concern a module, options declared beside the hooks that use them:

- :mod:`.options`  recipes selection and the shared ``harness`` session object
- :mod:`.static`   static checks, one test per (recipe, check)
- :mod:`.deploy`   deploy targets (local, kubernetes) and the smoke suite's fixtures
- :mod:`.perf`     the performance suite's fixtures
- :mod:`.predict`  the predict suite: predicted performance on the target GPUs (no GPU needed)
- :mod:`.cluster`  ``--cluster kind|k3d|minikube``: a throw-away cluster with the Dynamo platform
- :mod:`.kube`     Kubernetes target options and preflight
- :mod:`.report`   junit.xml, report.html, summary.json and summary.md in ``--report-dir``
"""

pytest_plugins = [
    "recipe_harness.plugin.options",
    "recipe_harness.plugin.static",
    "recipe_harness.plugin.deploy",
    "recipe_harness.plugin.perf",
    "recipe_harness.plugin.predict",
    "recipe_harness.plugin.cluster",  # before kube, which imports it
    "recipe_harness.plugin.kube",
    "recipe_harness.plugin.report",
]
