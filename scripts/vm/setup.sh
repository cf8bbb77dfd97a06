#!/usr/bin/env bash
# One-time preparation of the full-kernel test tier: a stock Debian kernel (which has
# 802.1Q, bridge VLAN filtering, dummy links and loadable modules), netdevsim built
# out of tree for it, and a small busybox initramfs. Everything comes from Debian's
# packages; nothing is installed on the host but QEMU and busybox.
#
# Idempotent: a second run checks what is there and takes seconds.
#   VMTEST_DIR   where it all goes (default /var/cache/cni-vmtest)
#   VMTEST_KPKG  the kernel image package (default: what linux-image-amd64 depends on)
#
# Note: installing qemu-system-x86 removes this machine kind's preinstalled qemu-utils
# (qemu-img); nothing in this project needs qemu-img.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${VMTEST_DIR:-/var/cache/cni-vmtest}
mkdir -p "$dir"
log() { echo "vm/setup: $*"; }

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v xz >/dev/null || need+=(xz-utils)
command -v make >/dev/null || need+=(make)
command -v cpio >/dev/null || need+=(cpio)
command -v gcc >/dev/null || need+=(gcc)
[ -e /usr/lib/x86_64-linux-gnu/libelf.so.1 ] || need+=(libelf1)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

kpkg=${VMTEST_KPKG:-$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)}
if [ -z "$kpkg" ]; then
    apt-get update -qq
    kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)
fi
abi=${kpkg#linux-image-}            # 6.1.0-56-amd64
kver=$abi
version=$(apt-cache show "$kpkg" | sed -n 's/^Version: //p' | head -n 1)   # 6.1.192-2
series=${abi%%.0-*}                 # 6.1
common=linux-headers-${abi%-amd64}-common
stamp="$dir/ready-$kver"
if [ -f "$stamp" ] && [ -f "$dir/vmlinux" ] && [ -f "$dir/initrd.img" ]; then
    # The guest init may have changed since: rebuilding the initramfs is cheap.
    if [ "$here/guest-init" -nt "$dir/initrd.img" ]; then rm -f "$stamp"; else log "ready ($kver)"; exit 0; fi
fi

root="$dir/root"
if [ ! -f "$root/boot/vmlinuz-$kver" ]; then
    log "downloading $kpkg $version and its headers and sources"
    mkdir -p "$dir/debs" && cd "$dir/debs"
    apt-get download -qq -o APT::Sandbox::User=root "$kpkg=$version" "linux-headers-$abi=$version" "$common=$version" \
        "linux-kbuild-$series=$version" "linux-source-$series=$version"
    mkdir -p "$root"
    for deb in *.deb; do dpkg -x "$deb" "$root"; done
    cd "$dir" && rm -rf "$dir/debs"
fi

if [ ! -f "$dir/vmlinux" ]; then
    # The PVH entry of the uncompressed ELF boots without BIOS or decompressor (3 s, not 9).
    log "extracting vmlinux"
    offset=$(grep -abo $'\xfd7zXZ' "$root/boot/vmlinuz-$kver" | head -n 1 | cut -d: -f1)
    tail -c +$((offset + 1)) "$root/boot/vmlinuz-$kver" | xz -dc > "$dir/vmlinux" 2>/dev/null || true
    file_type=$(head -c 4 "$dir/vmlinux" | od -An -c | tr -d ' ')
    [ "$file_type" = '177ELF' ] || { log "could not extract an ELF vmlinux"; exit 1; }
fi

moddir="$root/lib/modules/$kver"
if [ ! -f "$moddir/extra/netdevsim.ko" ]; then
    log "building netdevsim"
    src="$dir/netdevsim-src"
    rm -rf "$src" && mkdir -p "$src"
    tar -xaf "$root/usr/src/linux-source-$series.tar.xz" -C "$src" --strip-components=4 \
        "linux-source-$series/drivers/net/netdevsim"
    headers="$root/usr/src/linux-headers-$abi"
    # The headers name their -common sibling and kbuild by absolute /usr paths.
    sed -i "s|/usr/src/${common}|$root/usr/src/${common}|g" "$headers/Makefile"
    for link in "$headers/scripts" "$headers/tools" "$root/usr/src/$common/scripts" "$root/usr/src/$common/tools"; do
        if [ -L "$link" ]; then
            target=$(readlink "$link")
            case "$target" in /*) ln -sfn "$root$target" "$link" ;; esac
        fi
    done
    make -s -C "$headers" M="$src" CONFIG_NETDEVSIM=m modules >/dev/null
    mkdir -p "$moddir/extra"
    cp "$src/netdevsim.ko" "$moddir/extra/"
    strip --strip-debug "$moddir/extra/netdevsim.ko"
    depmod_bin=$(command -v depmod || echo "busybox depmod")
    $depmod_bin -b "$root" "$kver"
fi

log "building the initramfs"
initrd="$dir/initramfs"
rm -rf "$initrd" && mkdir -p "$initrd"/{bin,dev,proc,sys,mnt,lib/modules,newroot}
cp /bin/busybox "$initrd/bin/"
for applet in sh mount umount mkdir insmod modprobe cat echo poweroff sleep ln chroot hostname ip stty chmod printf sed tr cp switch_root; do
    ln -sf busybox "$initrd/bin/$applet"
done
cp "$here/guest-init" "$initrd/init"
chmod +x "$initrd/init"
# The modules needed to reach the host's root over 9p, each after its dependencies
# (read from modules.dep).
declare -A placed=()
place() {
    local rel=$1 dep
    [ -n "${placed[$rel]:-}" ] && return
    placed[$rel]=1
    for dep in $(sed -n "s|^$rel: *||p" "$moddir/modules.dep"); do place "$dep"; done
    cp "$moddir/$rel" "$initrd/lib/modules/"
    basename "$rel" >> "$initrd/lib/modules/order"
}
: > "$initrd/lib/modules/order"
for module in virtio_pci 9pnet_virtio 9p overlay; do
    rel=$(sed -n "s|^\(kernel/.*/$module\.ko[^:]*\):.*|\1|p" "$moddir/modules.dep" | head -n 1)
    [ -n "$rel" ] && place "$rel"   # none: built in
done
(cd "$initrd" && find . | cpio -o -H newc --quiet | gzip -1) > "$dir/initrd.img"
echo "$kver" > "$dir/kernel-version"
touch "$stamp"
log "ready ($kver) in $dir"
