#!/usr/bin/env bash
# Build the guest kernel.
#   build.sh SOURCE_DEB FRAGMENT WORKDIR OUT_BZIMAGE
# SOURCE_DEB is Debian's linux-source-X.Y package; FRAGMENT the project's
# configuration: the build starts from allnoconfig and turns on only what
# the fragment names. Phases are announced as "phase: NAME" lines; during
# the compile, make's own "  CC  file" lines go through, and the harness
# counts them to show how far the build is.
set -euo pipefail
deb=$1 fragment=$2 work=$3 out=$4
jobs=$(( $(nproc) + 1 ))

echo "phase: extract"
rm -rf "$work"; mkdir -p "$work"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards './usr/src/linux-source-*.tar.xz'
tarball=$(ls "$work"/usr/src/linux-source-*.tar.xz)
tar -xf "$tarball" -C "$work"
rm -f "$tarball"
src=$(ls -d "$work"/linux-source-*)

echo "phase: configure"
cd "$src"
make -s allnoconfig KCONFIG_ALLCONFIG="$fragment"
# Every option the fragment sets must have taken (a dependency it lacks would drop it).
missing=0
while IFS= read -r line; do
  case "$line" in CONFIG_*=*) grep -qx "$line" .config || { echo "config: $line did not take" >&2; missing=1; } ;; esac
done < "$fragment"
[ "$missing" = 0 ] || exit 1

echo "phase: compile"
make -j"$jobs" bzImage 2>&1 | grep -E '^  (CC|AS) |(error|Error)' || true
[ -f arch/x86/boot/bzImage ] || { echo "no bzImage was produced" >&2; exit 1; }

echo "phase: install"
mkdir -p "$(dirname "$out")"
cp arch/x86/boot/bzImage "$out.tmp" && mv "$out.tmp" "$out"
cp .config "$(dirname "$out")/config"
# The uAPI headers of this kernel, for the ABI drift check of the addon.
make -s headers_install INSTALL_HDR_PATH="$(dirname "$out")/headers"
echo "phase: done"
