"""A benchmark run: options, configuration, plan, run folder, pipeline, executors and the runner.

Import the pieces from their modules (``benchmark.run.config``, ``benchmark.run.runner``, ...):
this package's ``__init__`` imports nothing, so importing one piece stays cheap.
"""
