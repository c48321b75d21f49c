"""Static checks: schemas, the rule registry and its rules, suppressions."""
