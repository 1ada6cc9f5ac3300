"""The `tracekit` command line: thin click shells over the library."""
