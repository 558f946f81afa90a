#!/usr/bin/env bash
# Check the system libraries dexsim needs and install the missing ones when permitted.
#   libosmesa6    MuJoCo offscreen rendering without a display or GPU (MUJOCO_GL=osmesa)
#   libgl1        open3d (libGL.so.1)
#   libusb-1.0-0  open3d (librealsense support is linked in)
#   libgomp1      open3d and torch OpenMP runtime
#   chromium      the headless browser of dexsim play's browser test (Playwright drives it)
# Prints the exact command when it cannot install (not root and no passwordless sudo).
set -euo pipefail
packages=(libosmesa6 libgl1 libusb-1.0-0 libgomp1 chromium)
missing=()
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "dexsim: not a Debian/Ubuntu system; make sure OSMesa, libGL, libusb-1.0, libgomp (and chromium for the browser test) are installed." >&2
  exit 0
fi
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  echo "dexsim: installing system packages: ${missing[*]}"
  bash -c "$cmd" >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  echo "dexsim: installing system packages with sudo: ${missing[*]}"
  sudo bash -c "$cmd" >/dev/null
else
  echo "dexsim: missing system packages: ${missing[*]}" >&2
  echo "run:  sudo bash -c '$cmd'" >&2
  exit 1
fi
