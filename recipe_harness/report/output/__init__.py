"""Machine outputs of findings: SARIF 2.1.0 (:mod:`.sarif`, for code scanning) and GitHub Actions
workflow commands (:mod:`.github`, annotations on a pull request's files)."""

from recipe_harness.report.output.github import github_commands
from recipe_harness.report.output.sarif import sarif_log

FORMATS = ("text", "json", "sarif", "github")

__all__ = ["FORMATS", "github_commands", "sarif_log"]
