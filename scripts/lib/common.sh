# Sourced by the scripts that start servers: a free loopback port, and
# commands to run when the script exits.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# on_exit COMMAND: runs COMMAND when the script exits, after those added before.
if [ -z "${exit_commands+set}" ]; then
  exit_commands=()
fi
on_exit() {
  exit_commands+=("$1")
  trap 'for c in "${exit_commands[@]}"; do $c; done' EXIT
}
