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
# tools_deb PACKAGE COMMAND: a command from a Debian package, unpacked into
# $TOOLS_DIR/PACKAGE with apt-get download and dpkg-deb -x: no root needed, nothing
# installed system-wide, no service started. Where that cannot be done, the tests that
# need the command print a notice and skip.
tools_deb() {
  local root="$TOOLS_DIR/$1"
  if [ ! -x "$root/usr/bin/$2" ] && ! command -v "$2" >/dev/null 2>&1 \
    && command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
    echo "unpacking the Debian package $1 into $root" >&2
    mkdir -p "$TOOLS_DIR/deb"
    if ! { (cd "$TOOLS_DIR/deb" && apt-get download "$1" >/dev/null 2>&1) \
      && dpkg-deb -x "$(ls -t "$TOOLS_DIR/deb/$1"_*.deb | head -n 1)" "$root"; }; then
      echo "could not get $1: the tests that need $2 will say so and skip" >&2
    fi
  fi
  if [ -x "$root/usr/bin/$2" ]; then
    export PATH="$root/usr/bin:$PATH"
  fi
}
