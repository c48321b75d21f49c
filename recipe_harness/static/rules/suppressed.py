"""Suppression hygiene (RH390-RH392): every suppression in ``.recipe-harness.yaml`` has a reason, names a
rule that exists and still suppresses something."""

from __future__ import annotations

from collections.abc import Iterator

from recipe_harness.findings import Finding, Severity
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.rules import all_rules, make, rule, suppressible
from recipe_harness.static.suppressions import _RULE_ID, CHECK, active, for_recipe


@rule("RH390", CHECK, "Every suppression is used: the rule it names still fires on the recipe.",
      "delete the suppression: the problem it excused is fixed", severity=Severity.WARNING)
def unused(recipe: LoadedRecipe) -> Iterator[Finding]:
    if recipe.load_findings:
        return
    rules = all_rules()
    for rule_id, s in active(recipe, suppressible).items():
        if not rules[rule_id].run(recipe):
            yield make("RH390", s.file, s.line, s.col,
                       f"suppression of {rule_id} is unused: {rule_id} reports nothing for {recipe.id}",
                       recipe=recipe.id)


@rule("RH391", CHECK, "Every suppression gives a reason.",
      "add `reason: \"...\"` saying why the rule does not apply to this recipe")
def reasonless(recipe: LoadedRecipe) -> Iterator[Finding]:
    sf = for_recipe(recipe)
    if sf is None:
        return
    for s in sf.entries:
        if not s.valid:
            yield make("RH391", s.file, s.line, s.col,
                       f"suppression of {s.rule} has no reason; it suppresses nothing until it has one",
                       recipe=recipe.id)


@rule("RH392", CHECK, "The suppressions file is well-formed and names rules that exist and can be suppressed.",
      "write `suppress: [{rule: RH3nn, reason: ...}]`; loading (RH0xx) and schema (RH2xx) findings cannot be "
      "suppressed")
def malformed(recipe: LoadedRecipe) -> Iterator[Finding]:
    sf = for_recipe(recipe)
    if sf is None:
        return
    for message, line, col in sf.problems:
        yield make("RH392", str(sf.path), line, col, message, recipe=recipe.id)
    for s in sf.entries:
        if not _RULE_ID.match(s.rule) or s.rule not in all_rules():
            yield make("RH392", s.file, s.line, s.col, f"unknown rule id {s.rule!r}", recipe=recipe.id)
        elif not suppressible(s.rule):
            yield make("RH392", s.file, s.line, s.col,
                       f"{s.rule} ({all_rules()[s.rule].check}) cannot be suppressed", recipe=recipe.id)
