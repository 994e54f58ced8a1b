"""The floor every layer stands on: errors, atomic writes, paths, the class order, the settings schema, metrics."""
