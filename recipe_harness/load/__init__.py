"""Load: find recipes, read their YAML with positions, render overlays and templates."""
