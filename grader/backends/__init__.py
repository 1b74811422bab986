"""Where the harness runs: `local` (this host) and, separately, `docker`.

The grading core knows only the `Backend` protocol (`grader.backend`); it never
imports a backend module. A backend imports of the core only the protocol, the
`Context` it is given and the low layers (sandbox, uids, cgroups, workers).
"""
