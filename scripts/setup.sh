#!/usr/bin/env bash
# Host set-up for roamlb on Debian 12, idempotent: installs the build and test
# dependencies from Debian, reserves hugepages and mounts hugetlbfs.
#
#   scripts/setup.sh                  everything (run as root)
#   scripts/setup.sh --packages-only  Debian packages only (Dockerfile build stage)
#   scripts/setup.sh --runtime-only   runtime libraries only (Dockerfile final stage)
#
# Environment: ROAMLB_HUGEPAGES=N  2 MiB pages to reserve (default 2048 = 4 GiB).
set -euo pipefail

mode=all
case "${1:-}" in
  --packages-only) mode=packages ;;
  --runtime-only) mode=runtime ;;
  "") ;;
  *) echo "usage: $0 [--packages-only|--runtime-only]" >&2; exit 2 ;;
esac

say() { printf 'setup: %s\n' "$*"; }

build_packages=(
  libdpdk-dev      # DPDK 22.11 headers and pkg-config file (bindings are generated from them)
  dpdk             # runtime PMDs and dpdk-devbind.py (NIC binding)
  dpdk-dev         # dpdk-testpmd, the benchmark baseline
  pkg-config       # finds libdpdk's flags
  libclang-dev     # bindgen parses the DPDK headers with libclang
  clang
  build-essential  # cc for the static-inline wrappers
  libpcap-dev      # net_pcap virtual devices
  python3-scapy    # independent test-traffic crafting
  tshark           # dissects what roamlb emits, in tests
  lua5.3           # syntax check of the pktgen Lua scripts
  iproute2         # network namespaces for multi-host tests
  procps
  ca-certificates
)
runtime_packages=(dpdk libpcap0.8 ca-certificates)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (apt-get and hugepages need it), e.g. sudo $0" >&2
  exit 1
fi

case "$mode" in
  runtime) wanted=("${runtime_packages[@]}") ;;
  *) wanted=("${build_packages[@]}") ;;
esac
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing from Debian: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present: ${wanted[*]}"
fi

[ "$mode" = all ] || exit 0

# Rust: the toolchain comes from rustup (Debian 12's rustc 1.63 is too old).
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: install Rust >= 1.80 with rustup (https://rustup.rs), then rerun" >&2
  exit 1
fi
say "$(cargo --version), $(pkg-config --modversion libdpdk | sed 's/^/DPDK /')"

# Hugepages: 2 MiB pages, plus a hugetlbfs mount for DPDK's memory files.
want=${ROAMLB_HUGEPAGES:-2048}
nr=/proc/sys/vm/nr_hugepages
have=$(cat "$nr" 2>/dev/null || echo 0)
if [ "$have" -lt "$want" ]; then
  if echo "$want" > "$nr" 2>/dev/null; then
    have=$(cat "$nr")
    if [ "$have" -lt "$want" ]; then
      say "only $have of $want hugepages could be reserved (memory fragmented); reboot with hugepages=$want on the kernel command line for the full amount"
    else
      say "reserved $have hugepages of 2 MiB"
    fi
  else
    say "cannot write $nr (not root, or an unprivileged container): roamlb and its tests fall back to --no-huge"
  fi
else
  say "$have hugepages of 2 MiB already reserved"
fi
if grep -qs ' hugetlbfs ' /proc/mounts; then
  say "hugetlbfs mounted at $(awk '$3=="hugetlbfs"{print $2; exit}' /proc/mounts)"
else
  mkdir -p /dev/hugepages
  if mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null; then
    say "mounted hugetlbfs at /dev/hugepages"
  else
    say "cannot mount hugetlbfs: roamlb and its tests fall back to --no-huge"
  fi
fi
free=$(awk '/HugePages_Free/{print $2}' /proc/meminfo)
say "hugepages free: ${free:-0}"
