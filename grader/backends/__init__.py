"""Where the harness runs: `local` (this host) and, separately, `docker`.

The grading core (`grader.grade`) knows only the `Backend` protocol; it never
imports a backend module, and nothing here imports Docker code.
"""
