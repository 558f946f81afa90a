#!/usr/bin/env bash
# Check the system libraries dexsim needs and install the missing ones when permitted.
#   libosmesa6    MuJoCo offscreen rendering without a display or GPU (MUJOCO_GL=osmesa)
#   libgl1        open3d (libGL.so.1)
#   libusb-1.0-0  open3d (librealsense support is linked in)
#   libgomp1      open3d and torch OpenMP runtime
# Optional (installed when possible; without it the browser test skips with its reason):
#   chromium      the headless browser of dexsim play's browser test (Playwright drives it)
# Prints the exact command when it cannot install (not root and no passwordless sudo).
set -euo pipefail
packages=(libosmesa6 libgl1 libusb-1.0-0 libgomp1)
optional=(chromium)
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "dexsim: not a Debian/Ubuntu system; make sure OSMesa, libGL, libusb-1.0, libgomp (and chromium for the browser test) are installed." >&2
  exit 0
fi
missing_of() {  # the packages of "$@" that are not installed
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
# install_packages REQUIRED PKG...: returns non-zero when they cannot be installed
install_packages() {
  local required=$1; shift
  local cmd="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $*"
  if [ "$(id -u)" -eq 0 ]; then
    echo "dexsim: installing system packages: $*"
    bash -c "$cmd" >/dev/null
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "dexsim: installing system packages with sudo: $*"
    sudo bash -c "$cmd" >/dev/null
  else
    echo "dexsim: missing system packages: $*" >&2
    echo "run:  sudo bash -c '$cmd'" >&2
    [ "$required" = yes ] && return 1 || return 0
  fi
}
missing=$(missing_of "${packages[@]}")
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  install_packages yes $missing
fi
missing=$(missing_of "${optional[@]}")
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  install_packages no $missing || echo "dexsim: could not install $missing (optional: the browser test will skip)" >&2
fi
exit 0
