"""Subcommands of ``python -m benchmark``: one module per command, each with ``EXAMPLES``,
``add_arguments(parser)`` and ``run(args) -> exit code``. Imported lazily by :mod:`benchmark.cli`."""
