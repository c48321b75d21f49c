# The recipe-harness plugin is loaded through its pytest11 entry point (see pyproject.toml).
