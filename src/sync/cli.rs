//! `rostersync sync`.
