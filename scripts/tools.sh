# Sourced by the scripts: a project-local Python venv for the tools tests and checks
# need (grpcurl, zig), so nothing is installed system-wide. Safe to source repeatedly.
TOOLS_DIR="${PMON_TOOLS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools}"
tools_venv() {
  if [ ! -x "$TOOLS_DIR/venv/bin/pip" ]; then
    python3 -m venv "$TOOLS_DIR/venv"
  fi
  export PATH="$TOOLS_DIR/venv/bin:$PATH"
}
# tools_pip PACKAGE==VERSION COMMAND: installs the package unless COMMAND is there.
tools_pip() {
  tools_venv
  if [ ! -x "$TOOLS_DIR/venv/bin/$2" ]; then
    echo "installing $1 into $TOOLS_DIR/venv" >&2
    "$TOOLS_DIR/venv/bin/pip" install --quiet --disable-pip-version-check "$1"
  fi
}
# tools_apt PACKAGE COMMAND: a system tool the tests need, from the distribution. It is
# installed only when missing and this runs as root with apt-get at hand; otherwise the
# test that needs it fails saying what to install.
tools_apt() {
  if ! command -v "$2" >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $1 with apt-get" >&2
    apt-get install -y "$1" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$1" >/dev/null; }
  fi
}
