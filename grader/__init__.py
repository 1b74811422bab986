"""The course toolkit: manifests, starter generation and the autograder.

Import direction (lower layers never import higher ones):
    errors, schema  ->  manifest, markers  ->  starter, plugin  ->  verify  ->  cli
The grading core never imports Docker code; solutions/ never imports grader.
"""

__version__ = "0.1.0"
