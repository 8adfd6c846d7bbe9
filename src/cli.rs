//! Command-line entry points. Each subcommand's arguments live beside the code that runs it.
