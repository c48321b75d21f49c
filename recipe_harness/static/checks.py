"""Static checks of a recipe: loading, schema, then the rule groups. One entry point for the CLI
and the pytest suite, so both give the same verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from recipe_harness.findings import Finding, Severity
from recipe_harness.load.discovery import Discovery
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static import suppressions
from recipe_harness.static.rules import CHECK_SCHEMA, CHECK_YAML, rules_for, static_checks, suppressible

if TYPE_CHECKING:
    from recipe_harness.static.schema import Validator


@dataclass
class CheckOptions:
    kubernetes_version: str | None = None
    crd_files: tuple[Path, ...] = ()
    strict_kinds: bool = False
    strict: bool = False  # warnings fail too


@dataclass
class StaticChecker:
    options: CheckOptions = field(default_factory=CheckOptions)
    discovery: Discovery | None = None
    _validator: Validator | None = None

    @property
    def validator(self) -> Validator:
        if self._validator is None:
            # lazy: the schema package (jsonschema's referencing, CEL) takes ~0.2 s to import; the console
            # script imports this module at start, and `list`, `rules`, `new` never validate
            from recipe_harness.static.schema import SchemaOptions, Validator  # built once: compiles schemas lazily

            opts = SchemaOptions(crd_files=tuple(self.options.crd_files), strict_kinds=self.options.strict_kinds)
            if self.options.kubernetes_version:
                opts = replace(opts, kubernetes_version=self.options.kubernetes_version)
            self._validator = Validator(opts)
        return self._validator

    def run(self, recipe: LoadedRecipe, check: str) -> list[Finding]:
        if check == CHECK_YAML:
            found = list(recipe.load_findings)
            if self.discovery is not None:
                mine = {str(p) for p in recipe.recipe.files}
                recipe_dir = str(recipe.recipe.dir)
                found += [f for f in self.discovery.findings if f.file in mine or f.file.startswith(recipe_dir + "/")]
        elif check == CHECK_SCHEMA:
            found = []
            for _path, result in recipe.results.items():
                if result.findings:
                    continue  # reported by the yaml check
                for doc in result.documents:
                    found.extend(self.validator.validate(doc))
        else:
            rules = rules_for(check)
            if not rules:
                raise KeyError(f"unknown static check {check!r}; known: {', '.join(static_checks())}")
            if recipe.load_findings and check != "structure":
                found = []  # semantic rules need loadable files; the yaml check reports why not
            else:
                found = [f for r in rules for f in r.run(recipe)]
        found = [f if f.recipe else _with_recipe(f, recipe.id) for f in found]
        return apply_suppressions(recipe, check, found)

    def run_all(self, recipe: LoadedRecipe) -> dict[str, list[Finding]]:
        return {check: self.run(recipe, check) for check in static_checks()}

    def failing(self, findings: list[Finding]) -> list[Finding]:
        bad = {Severity.ERROR, Severity.WARNING} if self.options.strict else {Severity.ERROR}
        return [f for f in findings if f.severity in bad]


def _with_recipe(f: Finding, recipe_id: str) -> Finding:
    from dataclasses import replace

    return replace(f, recipe=recipe_id)


def apply_suppressions(recipe: LoadedRecipe, check: str, findings: list[Finding]) -> list[Finding]:
    """Per-recipe suppressions (``.recipe-harness.yaml``); see :mod:`.suppressions`."""
    return suppressions.apply(recipe, check, findings, suppressible)
