#!/usr/bin/env bash
# The arm64 install check (make pi-check): an emulated Debian 12 (bookworm) arm64
# userland (qemu-user-static + debootstrap, cached), the package installed there
# with apt as a technician would (no compiler), then the agent run under
# emulation: --help, profiles, init, doctor, config validate, and the
# hardware-free tests of the protocol, the buffer and the reader framing.
#
#   sudo packaging/pi-check.sh dist/qatysu-agent_<version>_all.deb
#
# Root needed (debootstrap, chroot, mounts). The clean userland is cached in
# ~/.cache/qatysu-pi-check/rootfs; each run works on a copy. Minutes, not seconds:
# not part of `make test`. Exit 0 when every step passed, 1 otherwise, 2 usage.
set -euo pipefail
prog=pi-check.sh
say() { echo "$prog: $*"; }
die() { echo "$prog: error: $*" >&2; exit 1; }

deb=${1:-}
[ -f "$deb" ] || { echo "$prog: error: give the .deb to check (make pi-check builds it)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root: debootstrap, chroot and mounts need it"
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Another board or release: QATYSU_PI_ARCH=armhf (32-bit Raspberry Pi OS), QATYSU_PI_SUITE=trixie.
arch=${QATYSU_PI_ARCH:-arm64}
suite=${QATYSU_PI_SUITE:-bookworm}
case "$arch" in
    arm64) qemu=qemu-aarch64 ;;
    armhf) qemu=qemu-arm ;;
    *) echo "$prog: error: QATYSU_PI_ARCH: $arch is not arm64 or armhf" >&2; exit 2 ;;
esac
default_cache=$HOME/.cache/qatysu-pi-check
[ "$arch-$suite" = arm64-bookworm ] || default_cache=$HOME/.cache/qatysu-pi-check-$arch-$suite
cache=${QATYSU_PI_CHECK_CACHE:-$default_cache}

# 1. The tools, and the kernel's binfmt_misc handler for the board's binaries.
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -x "/usr/bin/$qemu-static" ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
if [ "${#need[@]}" -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable "$qemu" >/dev/null 2>&1 || true
[ -e "/proc/sys/fs/binfmt_misc/$qemu" ] || die "no binfmt_misc handler for $arch (update-binfmts --enable $qemu)"

# 2. The clean userland of the board, made once (debootstrap's default mirror, or
# QATYSU_PI_MIRROR).
mkdir -p "$cache"
if [ ! -x "$cache/rootfs/usr/bin/apt-get" ]; then
    say "debootstrap $arch $suite into $cache/rootfs (minutes, once)"
    rm -rf "$cache/rootfs.partial"
    # shellcheck disable=SC2086
    debootstrap --arch="$arch" --variant=minbase "$suite" "$cache/rootfs.partial" ${QATYSU_PI_MIRROR:-} \
        >"$cache/debootstrap.log" 2>&1 || die "debootstrap failed: $cache/debootstrap.log"
    mv "$cache/rootfs.partial" "$cache/rootfs"
fi

# 3. A copy to install into, with /proc and /dev.
run="$cache/run"
cleanup() {
    for m in "$run/proc" "$run/dev" "$cache/run-offline/proc" "$cache/run-offline/dev"; do
        umount "$m" 2>/dev/null || true
    done
}
trap cleanup EXIT
cleanup
rm -rf "$run"
cp -a "$cache/rootfs" "$run"
mount -t proc proc "$run/proc"
mount --bind /dev "$run/dev"
cp /etc/resolv.conf "$run/etc/resolv.conf" 2>/dev/null || true
work="$run/root/qatysu-check"
mkdir -p "$work"
cp "$deb" "$work/"
cp -a "$src/tests" "$src/pyproject.toml" "$work/"
in_pi() { chroot "$run" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

failed=0
: >"$cache/pi-check.log"  # every step's output, in order
step() {  # step NAME COMMAND...: run it in the arm64 userland, report, go on
    local name=$1; shift
    echo "=== $name" >>"$cache/pi-check.log"
    if in_pi "$@" >"$cache/step.log" 2>&1; then
        say "ok    $name"
    else
        say "FAIL  $name (exit $?)"; sed 's/^/    /' "$cache/step.log" | tail -20; failed=1
    fi
    if grep -q "^Traceback" "$cache/step.log"; then say "FAIL  $name printed a traceback"; failed=1; fi
    cat "$cache/step.log" >>"$cache/pi-check.log"
}
say "$arch: $(in_pi uname -m) under $(in_pi sh -c '. /etc/os-release; echo "$PRETTY_NAME"')"
step "apt-get update" apt-get update -q
# The offline path of docs/technician.md: the .debs apt would fetch, collected
# first (on this fresh copy, as on a freshly flashed Pi), installed at the end
# into another fresh copy with no network at all.
step "apt-get install --download-only (the offline folder)" sh -c \
    "mkdir -p /root/offline/partial && apt-get install -y -q --download-only --no-install-recommends \
     -o Dir::Cache::archives=/root/offline /root/qatysu-check/$(basename "$deb") && ls /root/offline/*.deb"
step "apt install ./$(basename "$deb") (no compiler)" sh -c \
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /root/qatysu-check/$(basename "$deb") && ! command -v gcc"
step "qatysu --help" qatysu --help
step "qatysu profiles" qatysu profiles
step "qatysu init --profile pi5-rc522" qatysu init --profile pi5-rc522
step "qatysu config validate" qatysu config validate
# No Pi, no SPI bus here: doctor must say what fails (exit 1) without a traceback.
step "qatysu doctor (fails cleanly: no Pi here)" sh -c 'qatysu doctor --offline; test $? -eq 1'
step "python3-pytest, python3-hypothesis from Debian" sh -c \
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pytest python3-hypothesis python3-pytest-timeout"
# Debian's pytest and hypothesis (6.67) are older than the project's: these are
# the hardware-free files they collect (test_fuzz.py and its users need newer).
step "hardware-free tests: protocol, buffer, reader framing" sh -c "cd /root/qatysu-check && \
    /usr/lib/qatysu/venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/protocol/test_smoke.py tests/protocol/test_uids.py tests/protocol/test_canonical.py \
    tests/protocol/test_gaps.py tests/protocol/test_receipts.py \
    tests/buffer/test_append.py tests/buffer/test_acknowledge.py tests/buffer/test_recovery.py \
    tests/buffer/test_thin_scan.py tests/buffer/test_quarantine_record.py \
    tests/readers/test_framing.py"
# The offline install: a second fresh copy, its own network namespace (no
# interface but lo), the collected .debs and the package only.
cleanup
offline="$cache/run-offline"
rm -rf "$offline"
cp -a "$cache/rootfs" "$offline"
mkdir -p "$offline/root/offline"
cp "$run"/root/offline/*.deb "$deb" "$offline/root/offline/"
mount -t proc proc "$offline/proc"
mount --bind /dev "$offline/dev"
in_pi() {
    unshare --net chroot "$offline" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 "$@"
}
step "offline: apt install of the collected .debs and the package, no network" sh -c \
    "DEBIAN_FRONTEND=noninteractive QATYSU_PROFILE=pi-usb-serial apt-get install -y -q --no-install-recommends /root/offline/*.deb"
step "offline: the profile given to apt made the config" qatysu config validate
umount "$offline/proc" "$offline/dev" 2>/dev/null || true
say "every step's output: $cache/pi-check.log"
if [ "$failed" = 0 ]; then say "$arch $suite install check passed"; else say "$arch $suite install check FAILED"; fi
exit "$failed"
