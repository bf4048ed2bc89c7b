"""The ``sopilot`` command line: one module per command group."""
