#!/usr/bin/env bash
# Install (or remove) the Qatysu agent on a Raspberry Pi. Step by step:
# docs/technician.md. Run as root from a checkout:
#
#   sudo scripts/install.sh --profile pi5-rc522
#   sudo scripts/install.sh --uninstall
#
# What it does: a virtual environment under PREFIX/venv with the `pi` extra
# (and mfrc522 without its dependencies), the system user and its groups
# (gpio spi dialout), the systemd unit and modules-load.d/qatysu.conf,
# /etc/qatysu/agent.toml from the profile with the device key, the
# boot config lines the profile needs (shown; applied only with consent, after
# a backup), and `systemctl enable`. It never starts the agent: enroll first.
#
# --root DIR installs into another system root (an SD card image, a chroot, a
# test folder); --no-system prints the user, group and systemctl commands
# instead of running them. Exit codes: 0 ok, 1 failure, 2 usage.
set -euo pipefail

prog=install.sh
die() { echo "$prog: error: $*" >&2; exit 1; }
usage_error() { echo "$prog: error: $*" >&2; echo "try '$0 --help'" >&2; exit 2; }
say() { echo "$prog: $*"; }

source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
profile=""
prefix=/opt/qatysu
root=/
python=python3
pip_args=""
extras=pi
no_pip=0
qatysu=""
user=qatysu
no_system=0
assume_yes=0
boot_config_ok=1
with_portal=0
uninstall=0

help() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; cat <<'USAGE'
Options:
  --profile NAME      board profile (list: qatysu profiles); required to install
  --prefix DIR        install prefix (default /opt/qatysu); the venv is PREFIX/venv
  --root DIR          system root to install into (default /)
  --source DIR        the qatysu source tree (default: this checkout)
  --python PY         interpreter for the venv (default python3)
  --extras LIST       pip extras (default pi; "" for none)
  --pip-args ARGS     extra pip arguments, e.g. "--no-index --find-links /media/usb"
  --no-pip            create the venv but install no package into it
  --qatysu CMD        qatysu command for profile and config steps (default PREFIX/venv/bin/qatysu)
  --user NAME         service user (default qatysu)
  --no-system         print user, group and systemctl commands instead of running them
  --yes               apply the boot config lines without asking
  --no-boot-config    never change the boot config (only show what it needs)
  --with-portal       also install systemd/qatysu-portal.service (a portal server)
  --uninstall         remove the units and the venv; keeps /etc/qatysu and /var/lib/qatysu
  -h, --help          this text
USAGE
}

while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=${2:?}; shift 2 ;;
        --prefix) prefix=${2:?}; shift 2 ;;
        --root) root=${2:?}; shift 2 ;;
        --source) source_dir=${2:?}; shift 2 ;;
        --python) python=${2:?}; shift 2 ;;
        --extras) extras=${2-}; shift 2 ;;
        --pip-args) pip_args=${2-}; shift 2 ;;
        --no-pip) no_pip=1; shift ;;
        --qatysu) qatysu=${2:?}; shift 2 ;;
        --user) user=${2:?}; shift 2 ;;
        --no-system) no_system=1; shift ;;
        --yes) assume_yes=1; shift ;;
        --no-boot-config) boot_config_ok=0; shift ;;
        --with-portal) with_portal=1; shift ;;
        --uninstall) uninstall=1; shift ;;
        -h|--help) help; exit 0 ;;
        *) usage_error "unknown option $1" ;;
    esac
done

case "$prefix" in /*) ;; *) usage_error "--prefix $prefix: must be an absolute path" ;; esac
[ -d "$root" ] || usage_error "--root $root: not a directory"
root=$(cd "$root" && pwd)
R=${root%/}  # "" for the real root, so "$R/etc" is /etc
venv="$prefix/venv"
units="$R/etc/systemd/system"
config="$R/etc/qatysu/agent.toml"
state="$R/var/lib/qatysu"

# System commands (users, groups, ownership, systemctl): run, or print with --no-system.
system() {
    if [ "$no_system" = 1 ]; then
        echo "would run: $*"
    else
        say "running: $*"
        "$@"
    fi
}
chroot_args=()
[ -n "$R" ] && chroot_args=(--root "$R")
systemctl_args=()
[ -n "$R" ] && systemctl_args=(--root="$R")

if [ "$uninstall" = 1 ]; then
    if [ -z "$R" ]; then
        system systemctl disable --now qatysu-agent.service
    else
        system systemctl "${systemctl_args[@]}" disable qatysu-agent.service
    fi
    rm -f "$units/qatysu-agent.service" "$units/qatysu-portal.service"
    rm -rf "$units/qatysu-agent.service.d"
    rm -f "$R/etc/modules-load.d/qatysu.conf"
    [ -z "$R" ] && system systemctl daemon-reload
    rm -rf "$R$venv"
    rmdir "$R$prefix" 2>/dev/null || true
    say "removed the units and $venv"
    say "kept $R/etc/qatysu and $state: they hold the device key and records not yet"
    say "uploaded. Remove them by hand once 'qatysu status' shows 0 pending records."
    exit 0
fi

[ -n "$profile" ] || usage_error "--profile NAME is required (list: qatysu profiles)"
[ -f "$source_dir/pyproject.toml" ] || usage_error "--source $source_dir: not a qatysu checkout"
[ "$(id -u)" = 0 ] || [ -n "$R" ] || die "run as root (sudo), or give --root DIR"

# 1. The virtual environment.
if [ ! -x "$R$venv/bin/python" ]; then
    say "creating $venv"
    if [ "$no_pip" = 1 ]; then
        "$python" -m venv --without-pip "$R$venv"
    else
        "$python" -m venv "$R$venv"
    fi
fi
if [ "$no_pip" = 0 ]; then
    # The pinned, hashed versions first (requirements/agent.lock, or agent-pi.lock
    # with the pi extra), then the agent itself without resolving anything again.
    case "$extras" in
        pi) lock="$source_dir/requirements/agent-pi.lock" ;;
        "") lock="$source_dir/requirements/agent.lock" ;;
        *) lock="" ;;
    esac
    spec="$source_dir"
    [ -n "$extras" ] && spec="$source_dir[$extras]"
    if [ -n "$lock" ]; then
        [ -f "$lock" ] || die "$lock is missing: not a complete qatysu checkout"
        # shellcheck disable=SC2086  # pip_args is a list of words on purpose
        "$R$venv/bin/python" -m pip install -q $pip_args --require-hashes -r "$lock"
        # shellcheck disable=SC2086
        "$R$venv/bin/python" -m pip install -q $pip_args --no-deps "$spec"
    else
        say "warning: extras '$extras' have no lock file; pip resolves them unpinned"
        # shellcheck disable=SC2086
        "$R$venv/bin/python" -m pip install -q $pip_args "$spec"
    fi
    # mfrc522 pins RPi.GPIO, which cannot coexist with rpi-lgpio: never its deps.
    # shellcheck disable=SC2086
    "$R$venv/bin/python" -m pip install -q $pip_args --no-deps --require-hashes \
        -r "$source_dir/requirements/mfrc522.lock"
fi
[ -n "$qatysu" ] || qatysu="$R$venv/bin/qatysu"

# 2. What the profile needs.
info=$(QATYSU_FIRMWARE_CONFIG="${QATYSU_FIRMWARE_CONFIG:-$source_dir/firmware_config}" \
    $qatysu profiles --json) || die "cannot list profiles with $qatysu"
fields=$(printf '%s' "$info" | "$python" -c '
import json, sys
name = sys.argv[1]
profiles = {p["name"]: p for p in json.load(sys.stdin)}
if name not in profiles:
    sys.exit("unknown profile %r (known: %s)" % (name, ", ".join(sorted(profiles))))
p = profiles[name]
print(" ".join(p["groups"]))
print("\t".join(p["boot_config_lines"]))
' "$profile") || usage_error "--profile $profile: see the message above"
boot_lines=$(sed -n 2p <<<"$fields" | tr '\t' '\n')

# 3. The service user and its groups (gpio spi dialout, as the unit expects).
for group in gpio spi dialout; do
    if ! grep -q "^$group:" "$R/etc/group" 2>/dev/null; then
        system groupadd "${chroot_args[@]}" --system "$group"
    fi
done
if ! grep -q "^$user:" "$R/etc/passwd" 2>/dev/null; then
    system useradd "${chroot_args[@]}" --system --user-group --home-dir /var/lib/qatysu \
        --no-create-home --shell /usr/sbin/nologin --groups gpio,spi,dialout "$user"
else
    system usermod "${chroot_args[@]}" --append --groups gpio,spi,dialout "$user"
fi

# 4. The unit (it allows every reader and GPIO driver by its major's name, so
# it does not depend on the profile: docs/decisions/0940), and the USB serial
# drivers loaded at boot so that a reader plugged in later is allowed too.
mkdir -p "$units" "$R/etc/modules-load.d"
sed -e "s#/opt/qatysu/venv#$venv#g" -e "s#^User=qatysu\$#User=$user#" -e "s#^Group=qatysu\$#Group=$user#" \
    "$source_dir/systemd/qatysu-agent.service" >"$units/qatysu-agent.service"
chmod 0644 "$units/qatysu-agent.service"
# Earlier versions wrote a per-profile drop-in; it is no longer needed.
rm -f "$units/qatysu-agent.service.d/devices.conf"
rmdir "$units/qatysu-agent.service.d" 2>/dev/null || true
install -m 0644 "$source_dir/systemd/qatysu-modules-load.conf" "$R/etc/modules-load.d/qatysu.conf"
if [ "$with_portal" = 1 ]; then
    sed -e "s#/opt/qatysu/venv#$venv#g" "$source_dir/systemd/qatysu-portal.service" \
        >"$units/qatysu-portal.service"
    chmod 0644 "$units/qatysu-portal.service"
fi
say "installed $units/qatysu-agent.service and /etc/modules-load.d/qatysu.conf"

# 5. The config and the device key (an existing config is kept).
if [ -f "$config" ]; then
    say "kept the existing $config"
else
    mkdir -p "$(dirname "$config")"
    QATYSU_FIRMWARE_CONFIG="${QATYSU_FIRMWARE_CONFIG:-$source_dir/firmware_config}" \
        $qatysu --config "$config" init --profile "$profile" --state-dir "$state" >/dev/null
    # init wrote the path as seen from here; the device sees it without --root.
    $qatysu --config "$config" config set device.state_dir /var/lib/qatysu >/dev/null
    say "wrote $config and the device key under $state"
fi
mkdir -p "$state"
chmod 0700 "$state"
owner="$user:$user"
if [ -n "$R" ]; then  # the user lives in the target's passwd, not this machine's
    ids=$(awk -F: -v u="$user" '$1 == u { print $3 ":" $4 }' "$R/etc/passwd" 2>/dev/null || true)
    [ -n "$ids" ] && owner=$ids
fi
system chown -R "$owner" "$state"

# 6. The boot config: show what is missing; change it only with consent.
boot=""
for candidate in "$R/boot/firmware/config.txt" "$R/boot/config.txt"; do
    if [ -f "$candidate" ]; then boot=$candidate; break; fi
done
missing=()
while IFS= read -r line; do
    [ -n "$line" ] || continue
    if [ -z "$boot" ] || ! sed 's/#.*//; s/[[:space:]]//g' "$boot" | grep -qxF "$line"; then
        missing+=("$line")
    fi
done <<<"$boot_lines"
reboot_needed=0
if [ "${#missing[@]}" -gt 0 ]; then
    say "the boot config needs these lines for profile $profile:"
    printf '    %s\n' "${missing[@]}"
    if [ -z "$boot" ]; then
        say "no /boot/firmware/config.txt or /boot/config.txt under $root: add them by hand"
    elif [ "$boot_config_ok" = 0 ]; then
        say "not changed (--no-boot-config): add them to ${boot#"$R"} by hand"
    else
        answer=n
        if [ "$assume_yes" = 1 ]; then
            answer=y
        elif [ -t 0 ]; then
            read -r -p "$prog: add them to ${boot#"$R"} (a backup is kept)? [y/N] " answer
        fi
        if [ "$answer" = y ] || [ "$answer" = Y ]; then
            backup="$boot.qatysu-backup-$(date -u +%Y%m%dT%H%M%SZ)"
            cp -p "$boot" "$backup"
            {
                echo ""
                echo "# Added by qatysu scripts/install.sh (profile $profile)"
                echo "[all]"
                printf '%s\n' "${missing[@]}"
            } >>"$boot"
            reboot_needed=1
            say "added them to ${boot#"$R"}; the old file is ${backup#"$R"}"
        else
            say "not changed: add them to ${boot#"$R"} by hand, or re-run with --yes"
        fi
    fi
else
    say "the boot config already has what profile $profile needs"
fi

# 7. Enable (not start: the agent refuses to run before enrollment).
if [ -z "$R" ]; then
    system systemctl daemon-reload
    system systemctl enable qatysu-agent.service
else
    system systemctl "${systemctl_args[@]}" enable qatysu-agent.service
fi

say "done. Next:"
[ "$reboot_needed" = 1 ] && echo "  sudo reboot                       # the boot config changed"
echo "  sudo $venv/bin/qatysu enroll --portal https://PORTAL --token TOKEN"
echo "  sudo systemctl start qatysu-agent"
echo "  sudo $venv/bin/qatysu doctor"
