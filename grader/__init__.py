"""The course toolkit: manifests, starter generation and the autograder.

Layers, lower first; a module imports only from its own layer or lower ones
(`tests/test_structure.py` checks it):

1. errors, schema, files, interrupts, gpus, cgroups, seccomp, sandbox, uids, wire
2. manifest, markers, records, results, intake, worker, workers, canvas_archive,
   git_intake
3. starter, context, plugin, testrun, runner, timing, hypothesis_inputs, scoring, late
4. backend (the protocol), workspace, harness, verify, examples, scaffold
5. rerun, grade, reports.*, backends.* (local, docker, image, slurm, slurm_job),
   canvas_api, audit
6. batch, commands, gradescope_package, canvas_upload
7. grade_command, cli

A submission's way through: `batch` takes each submission in once (`intake`),
`grade` lays out its workspace (`workspace`), the backend runs the harness
(`testrun` builds the one pytest command line; `harness` + `runner` + `workers`
run probes in sandboxed workers), `rerun` reruns what failed through other
tasks' files, `scoring` turns `records` into points, `reports` write them.
The grading core never imports a backend; only `backends.docker` and
`backends.image` import the Docker SDK; solutions/ never imports grader.
"""

__version__ = "0.1.0"
