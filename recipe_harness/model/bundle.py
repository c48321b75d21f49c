"""A recipe with all its files loaded: the input of schema, rules and targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from recipe_harness.findings import Finding
from recipe_harness.load.discovery import Recipe
from recipe_harness.load.manifests import Document, LoadResult, load_file
from recipe_harness.model import Deployment, load_deployment

RULE_NO_DGD = "RH101"
RULE_MANY_DGD = "RH102"


@dataclass
class LoadedRecipe:
    recipe: Recipe
    results: dict[Path, LoadResult] = field(default_factory=dict)

    @classmethod
    def load(cls, recipe: Recipe, cache: dict[Path, LoadResult] | None = None) -> LoadedRecipe:
        """Load every manifest of the recipe; ``cache`` shares model-folder files between recipes."""
        loaded = cls(recipe)
        for path in recipe.files:
            if cache is not None and path in cache:
                loaded.results[path] = cache[path]
                continue
            result = load_file(path)
            loaded.results[path] = result
            if cache is not None:
                cache[path] = result
        return loaded

    @property
    def id(self) -> str:
        return self.recipe.id

    @property
    def load_findings(self) -> list[Finding]:
        return [f for r in self.results.values() for f in r.findings]

    def documents(self, path: Path | None = None) -> list[Document]:
        if path is not None:
            result = self.results.get(path)
            return list(result.documents) if result else []
        return [d for r in self.results.values() for d in r.documents]

    @property
    def deploy_documents(self) -> list[Document]:
        return self.documents(self.recipe.deploy_file)

    @property
    def model_cache_documents(self) -> list[Document]:
        return [d for p in self.recipe.model_cache_files for d in self.documents(p)]

    @property
    def perf_documents(self) -> list[Document]:
        return [d for p in self.recipe.perf_files for d in self.documents(p)]

    @cached_property
    def dgd_documents(self) -> list[Document]:
        return [d for d in self.deploy_documents if d.kind == "DynamoGraphDeployment"]

    @cached_property
    def deployment(self) -> Deployment | None:
        """The recipe's DGD, normalised (``None`` when the file holds no loadable DGD)."""
        docs = self.dgd_documents
        return load_deployment(docs[0]) if docs else None

    def by_kind(self, kind: str) -> list[Document]:
        return [d for d in self.documents() if d.kind == kind]

    @cached_property
    def readme_texts(self) -> dict[Path, str]:
        out: dict[Path, str] = {}
        for path in self.recipe.readmes:
            try:
                out[path] = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
        return out
