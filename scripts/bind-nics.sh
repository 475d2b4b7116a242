#!/usr/bin/env bash
# Bind NICs to DPDK on bare metal (vfio-pci), or give them back to the kernel.
#
#   scripts/bind-nics.sh show
#   scripts/bind-nics.sh bind 0000:3b:00.0 0000:3b:00.1
#   scripts/bind-nics.sh unbind ice 0000:3b:00.0 0000:3b:00.1
#
# Needs the IOMMU on (intel_iommu=on iommu=pt or amd_iommu=on on the kernel
# command line) and the interfaces down. Uses Debian's dpdk-devbind.py.
set -euo pipefail
devbind=$(command -v dpdk-devbind.py || command -v dpdk-devbind || true)
[ -n "$devbind" ] || { echo "bind-nics: dpdk-devbind.py not found: run scripts/setup.sh" >&2; exit 1; }

cmd=${1:-show}; shift || true
case "$cmd" in
  show)
    "$devbind" --status-dev net
    ;;
  bind)
    [ $# -gt 0 ] || { echo "usage: $0 bind PCI_ADDRESS..." >&2; exit 2; }
    if [ ! -d /sys/kernel/iommu_groups ] || [ -z "$(ls -A /sys/kernel/iommu_groups 2>/dev/null)" ]; then
      echo "bind-nics: no IOMMU groups: enable the IOMMU (intel_iommu=on iommu=pt) and reboot" >&2
      exit 1
    fi
    modprobe vfio-pci
    for dev in "$@"; do
      for ifc in /sys/bus/pci/devices/"$dev"/net/*; do
        [ -e "$ifc" ] && ip link set "$(basename "$ifc")" down
      done
    done
    "$devbind" --bind=vfio-pci "$@"
    "$devbind" --status-dev net
    ;;
  unbind)
    [ $# -gt 1 ] || { echo "usage: $0 unbind KERNEL_DRIVER PCI_ADDRESS..." >&2; exit 2; }
    driver=$1; shift
    "$devbind" --bind="$driver" "$@"
    "$devbind" --status-dev net
    ;;
  *)
    echo "usage: $0 show | bind PCI... | unbind DRIVER PCI..." >&2
    exit 2
    ;;
esac
