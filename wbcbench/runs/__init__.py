"""Run directories: their names, records and `done` markers, and reading finished runs into tables (no torch)."""
