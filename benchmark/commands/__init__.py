"""Subcommands of ``python -m benchmark``, one module each.

Each module has ``EXAMPLES``, ``add_arguments(parser)`` and ``run(args) -> exit code``;
:mod:`benchmark.cli` imports a module only when its command runs.
"""
