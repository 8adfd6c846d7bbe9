# Shared helpers for hack/ scripts. Source it; don't run it.

# free_port: prints a TCP port that is free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: runs COMMAND until it succeeds or the timeout passes.
# A COMMAND exit status of 2 means "will never succeed" (e.g. the process died): give up at once.
wait_for() {
  local what="$1" timeout="$2" rc; shift 2
  local deadline=$((SECONDS + timeout))
  while true; do
    rc=0; "$@" >/dev/null 2>&1 || rc=$?
    [ "$rc" = 0 ] && return 0
    if [ "$rc" = 2 ]; then
      echo "gave up waiting for $what: the process exited" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "timed out after ${timeout}s waiting for $what" >&2
      return 1
    fi
    sleep 0.2
  done
}

# stop_pid PIDFILE [TIMEOUT]: TERM the process, KILL it if it is still there after TIMEOUT seconds.
stop_pid() {
  local pidfile="$1" timeout="${2:-15}" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
