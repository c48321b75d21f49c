"""Release qualification: run the suites for one hardware profile, then write a bundle that says which
recipe was qualified where (system facts, software provenance, results, verdicts, checksums), and
verify such a bundle (:mod:`.verify`)."""
