# Sourced by the target scripts that manage a process tree themselves (sozu.sh, pingora.sh).

wait_port() { # pid port: wait until 127.0.0.1:port accepts, bounded to 20 s
  local pid=$1 port=$2 i
  for i in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

descendants() { # pid → the pid and all its descendants
  local c
  echo "$1"
  for c in $(pgrep -P "$1" 2>/dev/null); do descendants "$c"; done
}

wait_or_kill() { # pids…: wait up to 5 s for them to exit, then SIGKILL what is left
  local pids="$*" i p left
  for i in $(seq 1 50); do
    left=
    for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
    pids=$left
    [ -n "$pids" ] || return 0
    sleep 0.1
  done
  kill -KILL $pids 2>/dev/null || true
}
