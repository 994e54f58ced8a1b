"""Where the project lives: its repository and branch (the one place they are written). The Colab set-up
cell, the book's launch buttons and the run index's notebook links are made from these."""
REPO_URL = "https://github.com/wbc-benchmark/wbc-benchmark"
REPO_BRANCH = "main"
