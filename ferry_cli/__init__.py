"""The ``ferry`` command line: click + rich over the ferry core."""
