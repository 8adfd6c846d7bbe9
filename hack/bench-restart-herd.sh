#!/usr/bin/env bash
# A benchmark: a controller restart with many RosterConnections (the suite runs 200; default
# 200), their start-up verifications spread over a jitter window (default 30 s). Runs the suite's
# test `a_restart_spreads_verifications_and_a_429_keeps_connections_ready` (tests/controller_faults.rs)
# at that size on the real API server, Postgres and the Clever emulator, and prints its figures:
# the peak verification request rate at the emulator (max over sliding 1 s windows) and that no
# connection flipped to not Ready.
#
#   hack/bench-restart-herd.sh [CONNECTIONS] [WINDOW_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export ROSTERSYNC_HERD_CONNECTIONS="${1:-200}"
export ROSTERSYNC_HERD_WINDOW_SECONDS="${2:-30}"
export SKIP_DEMO=1
hack/test.sh --test controller_faults -- a_restart_spreads_verifications_and_a_429_keeps_connections_ready --nocapture 2>&1 |
    tee /dev/stderr | grep -E '^figure:' || true
