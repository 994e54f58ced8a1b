"""Many runs: named grids, launchers, the training notebook's parameters and the resumable sweep."""
