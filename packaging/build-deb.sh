#!/usr/bin/env bash
# Build qatysu-agent_<version>_all.deb with dpkg-deb alone (no debhelper):
#
#   packaging/build-deb.sh [--out DIR] [--python PY]      (make deb)
#
# The package holds the agent's wheel and the wheels of its pure-Python
# dependencies, pinned by requirements/agent.lock (PyPI's py3-none-any builds,
# so one package serves arm64, armhf and any other architecture). The compiled
# pieces come from the distribution: python3-cryptography, python3-spidev,
# python3-lgpio / python3-rpi-lgpio (docs/decisions/0941 and 0942). The
# maintainer scripts (packaging/debian/) make the venv from those wheels.
# Downloads are cached in ~/.cache/qatysu-deb-wheels. Exit 0 ok, 1 failure, 2 usage.
set -euo pipefail
prog=build-deb.sh
die() { echo "$prog: error: $*" >&2; exit 1; }

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$src/dist"
python=${PYTHON:-python3}
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=${2:?}; shift 2 ;;
        --python) python=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "$prog: error: unknown option $1" >&2; exit 2 ;;
    esac
done
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (apt-get install dpkg)"
version=$("$python" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$src/pyproject.toml")
package=qatysu-agent
cache=${QATYSU_DEB_CACHE:-$HOME/.cache/qatysu-deb-wheels}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage="$work/root"
lib="$stage/usr/lib/qatysu"
mkdir -p "$lib/wheels" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/usr/lib/modules-load.d" \
    "$stage/usr/share/doc/$package" "$stage/DEBIAN" "$cache"

# 1. The pure-Python dependencies, with the hashes of the lock. The compiled
# ones (cryptography and its cffi/pycparser) are the distribution's.
"$python" - "$src/requirements/agent.lock" "$work/pure.lock" <<'PY'
import re, sys
skip = {"cryptography", "cffi", "pycparser"}
blocks = re.split(r"\n(?=[A-Za-z])", open(sys.argv[1]).read())
kept = [b for b in blocks if re.match(r"[A-Za-z0-9_.-]+", b) and b.split("==")[0].lower() not in skip]
open(sys.argv[2], "w").write("\n".join(kept) + "\n")
PY
cat "$src/requirements/mfrc522.lock" >>"$work/pure.lock"
"$python" -m pip download -q --dest "$cache" --only-binary=:all: --no-deps \
    --python-version 3.11 --implementation py --abi none --platform any \
    --require-hashes -r "$work/pure.lock" || die "cannot download the wheels pinned in requirements/agent.lock"
names=$(grep -oE '^[A-Za-z0-9_.\-]+==[^ ;\\]+' "$work/pure.lock")
for pin in $names; do
    name=${pin%%==*}; ver=${pin#*==}
    norm=$(echo "$name" | tr 'A-Z-.' 'a-z__')
    wheel=$(ls "$cache" | grep -iE "^${norm}-${ver//./\\.}-.*-none-any\.whl$" | head -1 || true)
    [ -n "$wheel" ] || die "no py3-none-any wheel of $pin in $cache"
    cp "$cache/$wheel" "$lib/wheels/"
done

# 2. The agent's own wheel (it ships the board profiles as data files), from a
# clean copy of the tracked files: a checkout's build/ may hold stale modules.
mkdir -p "$work/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$src" ls-files -z | (cd "$src" && xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$work/src"
else
    tar -C "$src" --exclude=./.venv --exclude=./build --exclude=./dist -cf - . | tar -xf - -C "$work/src"
fi
"$python" -m pip wheel -q --no-deps --wheel-dir "$lib/wheels" "$work/src" >/dev/null \
    || die "cannot build the qatysu wheel"
ls "$lib/wheels"/qatysu-"$version"-py3-none-any.whl >/dev/null || die "no qatysu $version wheel built"

# 3. Command, unit, modules, docs, maintainer scripts.
sed "s#@VENV@#/usr/lib/qatysu/venv#g" "$src/packaging/qatysu.in" >"$stage/usr/bin/qatysu"
chmod 0755 "$stage/usr/bin/qatysu"
sed "s#/opt/qatysu/venv#/usr/lib/qatysu/venv#g" "$src/systemd/qatysu-agent.service" \
    >"$stage/lib/systemd/system/qatysu-agent.service"
cp "$src/systemd/qatysu-modules-load.conf" "$stage/usr/lib/modules-load.d/qatysu.conf"
cat >"$stage/usr/share/doc/$package/copyright" <<'TXT'
Qatysu agent. License: GPL-3.0-or-later (/usr/share/common-licenses/GPL-3).
Bundled wheels in /usr/lib/qatysu/wheels keep their own licenses (MIT, BSD, Apache-2.0).
TXT
for script in postinst prerm postrm; do
    install -m 0755 "$src/packaging/debian/$script" "$stage/DEBIAN/$script"
done
size=$(du -sk "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" "$src/packaging/debian/control" >"$stage/DEBIAN/control"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage/usr/lib/qatysu/wheels" "$stage/lib" "$stage/usr/share" "$stage/usr/lib/modules-load.d" -type f -exec chmod 0644 {} +
mkdir -p "$out"
deb="$out/${package}_${version}_all.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
