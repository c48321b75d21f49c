"""The ``kubernetes`` deploy target (``--target kubernetes``).

- :mod:`.client`        raw-JSON requests through the kubernetes client, retries with backoff
- :mod:`.resources`     kind -> API path
- :mod:`.watch`         list + watch with resourceVersion resume
- :mod:`.analysis`      fail-fast reasons from pods, Jobs, events, the DGD
- :mod:`.diagnostics`   events, pod status, logs, DGD status into the report dir
- :mod:`.portforward`   local port -> a Service's port, a labelled pod's port or one pod's port
- :mod:`.access`        the API's port (frontend Service or sidecar), worker metrics forwards, Endpoint
- :mod:`.namespace`     one labelled namespace per run; cleanup, also after interrupted runs
- :mod:`.preflight`     API, CRD, operator, GPUs, RDMA, storage classes
- :mod:`.perf_artifacts` aiperf artifacts of the perf Job, from its logs or its PVC
- :mod:`.target`        :class:`.target.KubernetesTarget`

Import from the modules: the package imports none of them, so :mod:`.twin` and :mod:`.platform` load
without the kubernetes client.
"""
