# Sourced by the scripts (not run): puts this checkout's virtual environment, when there is one,
# first on PATH, so that `python3`, `bacalhau` and the development tools are the ones the setup
# installed. The setup makes it only where the machine's Python refuses installs into itself
# (PEP 668, as Debian's own python3 does); elsewhere it installs into that Python, and this
# does nothing.
if [ -x "$PWD/.venv/bin/python3" ]; then
  export VIRTUAL_ENV="$PWD/.venv"
  export PATH="$VIRTUAL_ENV/bin:$PATH"
fi
