"""Rendering of recipe sources that are not applied as they are: kustomize overlays
(:mod:`.kustomize`, with ``kubectl kustomize``) and ``${VAR}`` templates (:mod:`.envsubst`)."""
