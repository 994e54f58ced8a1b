"""What a reader sees: tables, sentences, plots, the README's computed blocks (no torch)."""
