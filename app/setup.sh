# Shell helpers sourced by app/start (the README's command 1) and .ci/run (command 2), so both
# set up the same way on a fresh Debian or Ubuntu machine that has only python3.
#
#   apt_install PKG...      installs Debian packages through apt-get (with sudo when not root),
#                           or stops with the one line that would
#   use_python REQS         sets HAM_PYTHON to a Python that may install packages and installs
#                           the requirements file REQS into it
#
# Which Python: HAM_LAB_PYTHON when set (used as it is), else an active virtual environment
# ($VIRTUAL_ENV), else ./.venv, made here from python3. A distribution's own Python (Debian and
# Ubuntu mark it EXTERNALLY-MANAGED, and their pip refuses to install into it) gets an isolated
# .venv; a Python of the user's own (pyenv, conda, a python.org build) gets one that also sees
# its packages, so what is installed there is not downloaded again.

apt_install() {
  local as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo"
  if ! command -v apt-get >/dev/null || { [ -n "$as_root" ] && ! command -v sudo >/dev/null; }; then
    echo "HAM Lab needs the packages $*: install them (on Debian or Ubuntu: apt-get install $*)," \
         "then run this again." >&2
    exit 1
  fi
  echo "Installing $* (apt-get)..."
  if ! { $as_root apt-get update -q >/dev/null && $as_root apt-get install -y -q "$@" >/dev/null; }; then
    echo "Installing $* failed: run 'sudo apt-get install $*' yourself, then run this again." >&2
    exit 1
  fi
}

_python_ok() {  # $1: interpreter; true when it runs and is Python 3.10 or newer
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null
}

_make_venv() {
  if ! command -v python3 >/dev/null || ! _python_ok python3; then
    echo "HAM Lab needs Python 3.10 or newer as python3 (on Debian or Ubuntu: sudo apt-get install" \
         "python3), then run this again." >&2
    exit 1
  fi
  # Debian and Ubuntu leave out ensurepip, which venv needs for pip, unless python3-venv is installed.
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  local shared="--system-site-packages"
  python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))' && shared=""
  rm -rf .venv
  echo "Making a virtual environment for HAM Lab in .venv ..."
  python3 -m venv $shared .venv
}

use_python() {  # $1: requirements file
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  local stamp=""
  if [ -n "${HAM_LAB_PYTHON:-}" ]; then
    HAM_PYTHON="$HAM_LAB_PYTHON"
  elif [ -n "${VIRTUAL_ENV:-}" ] && _python_ok "$VIRTUAL_ENV/bin/python"; then
    HAM_PYTHON="$VIRTUAL_ENV/bin/python"
  else
    _python_ok .venv/bin/python || _make_venv
    HAM_PYTHON="$PWD/.venv/bin/python"
    stamp=".venv/ham-lab-$(basename "$1").sha256"
  fi
  # Installed once per version of the requirement files (pip reads the ones a file includes).
  local want
  want="$(cat requirements*.txt | sha256sum | cut -d' ' -f1)"
  if [ -n "$stamp" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  echo "Installing HAM Lab's Python packages ($1) ..."
  "$HAM_PYTHON" -m pip install -q -r "$1"
  [ -z "$stamp" ] || echo "$want" > "$stamp"
}
