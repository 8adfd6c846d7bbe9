//! `rostersync bench clever`: client throughput against the in-process emulator.
