"""Statistics and verdicts: the analysis plan's rules and each study's claims (no torch)."""
