"""Report: junit and summary.json/md, report.html's top, and findings' output formats."""
