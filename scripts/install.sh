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
bindings=auto
reinit=0
admin=""

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
  --with-portal       also install the portal extra and systemd/qatysu-portal.service
  --bindings MODE     where spidev, lgpio and gpiozero come from: system (the
                      distribution's python3-* packages, apt-get installs them;
                      the venv sees them), pip (PyPI: spidev and lgpio are then
                      compiled, gcc and python3-dev needed), or auto (default:
                      system where apt-get is, on this machine's own root)
  --admin USER        also put USER in the service's group, so that 'qatysu status'
                      reaches the running agent without sudo (default: the
                      user who ran sudo, on this machine's own root)
  --reinit            the config was made from another profile: rewrite it from
                      this one (a backup is kept; the key and records stay; enroll again)
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
        --bindings) bindings=${2:?}; shift 2 ;;
        --reinit) reinit=1; shift ;;
        --admin) admin=${2:?}; shift 2 ;;
        --uninstall) uninstall=1; shift ;;
        -h|--help) help; exit 0 ;;
        *) usage_error "unknown option $1" ;;
    esac
done

case "$prefix" in /*) ;; *) usage_error "--prefix $prefix: must be an absolute path" ;; esac
case "$bindings" in auto|system|pip) ;; *) usage_error "--bindings $bindings: system, pip or auto" ;; esac
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
    if grep -qs "$venv/bin/qatysu" "$R/usr/local/bin/qatysu"; then rm -f "$R/usr/local/bin/qatysu"; fi
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

# 1. The virtual environment. The compiled hardware bindings come from the
# distribution where it has them (no compiler needed; docs/decisions/0941),
# so the venv sees the system's site-packages.
if [ "$bindings" = auto ]; then
    bindings=pip
    if [ -z "$R" ] && command -v apt-get >/dev/null; then bindings=system; fi
fi
case ",$extras," in *,pi,*) want_pi=1 ;; *) want_pi=0 ;; esac
if [ "$bindings" = system ] && [ -z "$R" ]; then
    # Only the distribution's interpreter sees the distribution's python3-* packages.
    base=$("$python" -c 'import sys; print(sys.base_prefix)')
    [ "$base" = /usr ] || die "--bindings system needs the distribution's python3 (/usr/bin/python3), not $python (prefix $base); or use --bindings pip"
fi
if [ "$want_pi" = 1 ] && [ "$bindings" = system ]; then
    packages="python3-venv python3-spidev python3-gpiozero"
    # Raspberry Pi OS has lgpio and the RPi.GPIO shim on top of it; plain Debian
    # (bookworm) has neither, and gpiozero falls back to /dev/gpiomem there.
    for optional in python3-lgpio python3-rpi-lgpio; do
        if [ -n "$R" ] || apt-cache show "$optional" >/dev/null 2>&1; then
            packages="$packages $optional"
        fi
    done
    # shellcheck disable=SC2086
    system apt-get install -y $packages
fi
if [ "$want_pi" = 1 ] && [ "$bindings" = pip ] && [ "$no_pip" = 0 ]; then
    # No wheel of spidev (any platform) or lgpio (arm) on PyPI: pip compiles them.
    headers=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    if ! command -v gcc >/dev/null || [ ! -f "$headers/Python.h" ]; then
        die "--bindings pip compiles spidev and lgpio, which needs gcc and $headers/Python.h: apt-get install gcc python3-dev swig liblgpio-dev, or use --bindings system"
    fi
fi
venv_args=()
[ "$bindings" = system ] && venv_args+=(--system-site-packages)
if [ -x "$R$venv/bin/python" ] && [ "$no_pip" = 0 ] && ! "$R$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    # A first run without python3-venv leaves a venv without pip behind.
    say "rebuilding $venv: it has no pip (its creation failed before)"
    rm -rf "${R:?}$venv"
fi
if [ ! -x "$R$venv/bin/python" ]; then
    say "creating $venv"
    [ "$no_pip" = 1 ] && venv_args+=(--without-pip)
    if ! "$python" -m venv "${venv_args[@]}" "$R$venv"; then
        rm -rf "${R:?}$venv"
        die "$python -m venv failed: install python3-venv (apt-get install python3-venv) and re-run"
    fi
fi
# The pinned, hashed versions first (requirements/*.lock), then the agent itself
# without resolving anything again. With system bindings the pi extra is the
# distribution's, so only the pure-Python lock is installed.
locks=()
if [ "$want_pi" = 1 ] && [ "$bindings" = pip ]; then
    locks+=("$source_dir/requirements/agent-pi.lock")
else
    locks+=("$source_dir/requirements/agent.lock")
fi
pip_extras=$extras
[ "$bindings" = system ] && pip_extras=$(tr ',' '\n' <<<"$extras" | grep -vx pi | paste -sd, - || true)
if [ "$with_portal" = 1 ]; then
    locks+=("$source_dir/requirements/portal.lock")
    pip_extras=${pip_extras:+$pip_extras,}portal
fi
spec="$source_dir"
[ -n "$pip_extras" ] && spec="$source_dir[$pip_extras]"
if [ "$no_pip" = 1 ]; then
    say "--no-pip: not installing ${locks[*]#"$source_dir/"} nor $spec"
else
    for lock in "${locks[@]}"; do
        [ -f "$lock" ] || die "$lock is missing: not a complete qatysu checkout"
        say "installing the versions pinned in ${lock#"$source_dir/"}"
        # shellcheck disable=SC2086  # pip_args is a list of words on purpose
        "$R$venv/bin/python" -m pip install -q $pip_args --require-hashes -r "$lock"
    done
    # shellcheck disable=SC2086
    "$R$venv/bin/python" -m pip install -q $pip_args --no-deps "$spec"
    # mfrc522 pins RPi.GPIO, which cannot coexist with rpi-lgpio: never its deps.
    # shellcheck disable=SC2086
    "$R$venv/bin/python" -m pip install -q $pip_args --no-deps --require-hashes \
        -r "$source_dir/requirements/mfrc522.lock"
fi
[ -n "$qatysu" ] || qatysu="$R$venv/bin/qatysu"
# qatysu on PATH (sudo's secure_path has /usr/local/bin).
mkdir -p "$R/usr/local/bin"
sed "s#@VENV@#$venv#g" "$source_dir/packaging/qatysu.in" >"$R/usr/local/bin/qatysu"
chmod 0755 "$R/usr/local/bin/qatysu"

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
print(" ".join(p["drivers"]))
' "$profile") || usage_error "--profile $profile: see the message above"
boot_lines=$(sed -n 2p <<<"$fields" | tr '\t' '\n')
profile_drivers=$(sed -n 3p <<<"$fields")

# 2b. An existing config must come from this profile: the boot config lines
# and the console check below follow the profile, the agent follows the config.
marker="$R/etc/qatysu/profile"
if [ -f "$config" ]; then
    made_from=$(cat "$marker" 2>/dev/null || true)
    config_drivers=$("$python" -c '
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(" ".join(r.get("driver", "") for r in tomllib.load(f).get("readers", [])))
' "$config") || die "$config: cannot read it (see above)"
    if [ -n "$made_from" ] && [ "$made_from" != "$profile" ]; then
        mismatch="was made from profile $made_from"
    elif [ -z "$made_from" ] && [ "$config_drivers" != "$profile_drivers" ]; then
        mismatch="reads with ${config_drivers:-no reader}, profile $profile with $profile_drivers"
    else
        mismatch=""
    fi
    if [ -n "$mismatch" ] && [ "$reinit" = 0 ]; then
        usage_error "--profile $profile: ${config#"$R"} $mismatch; re-run with --profile ${made_from:-matching it}, or add --reinit to rewrite it from $profile"
    fi
    if [ -n "$mismatch" ]; then
        backup="$config.qatysu-backup-$(date -u +%Y%m%dT%H%M%SZ)"
        cp -p "$config" "$backup"
        say "--reinit: ${config#"$R"} $mismatch; the old one is ${backup#"$R"}"
        rm -f "$config"
    fi
fi

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

# The technician's login in the service's group: the control socket is 0660 in a
# 0750 runtime dir, both the group's, so 'qatysu status' works without sudo.
if [ -z "$admin" ] && [ -z "$R" ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    admin=$SUDO_USER
fi
if [ -n "$admin" ]; then
    system usermod "${chroot_args[@]}" --append --groups "$user" "$admin"
    say "$admin can run 'qatysu status' without sudo from its next login"
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
echo "$profile" >"$marker"
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

# 6b. A login console on the GPIO UART (console=serial0,115200 in cmdline.txt)
# answers the reader with a login prompt: shown, removed only with consent.
case " $(tr '\n' ' ' <<<"$boot_lines") " in
    *" enable_uart=1 "*|*" dtparam=uart0=on "*) uses_uart=1 ;;
    *) uses_uart=0 ;;
esac
cmdline=""
for candidate in "$R/boot/firmware/cmdline.txt" "$R/boot/cmdline.txt"; do
    if [ -f "$candidate" ]; then cmdline=$candidate; break; fi
done
if [ "$uses_uart" = 1 ] && [ -n "$cmdline" ]; then
    consoles=$(tr ' ' '\n' <"$cmdline" | grep -E '^console=(serial0|ttyAMA0|ttyS0)(,|$)' | paste -sd' ' - || true)
    if [ -n "$consoles" ]; then
        say "${cmdline#"$R"} puts a login console on the reader's UART: remove $consoles"
        if [ "$boot_config_ok" = 0 ]; then
            say "not changed (--no-boot-config): remove it by hand, or 'sudo raspi-config nonint do_serial_cons 1'"
        else
            answer=n
            if [ "$assume_yes" = 1 ]; then
                answer=y
            elif [ -t 0 ]; then
                read -r -p "$prog: remove it from ${cmdline#"$R"} (a backup is kept)? [y/N] " answer
            fi
            if [ "$answer" = y ] || [ "$answer" = Y ]; then
                backup="$cmdline.qatysu-backup-$(date -u +%Y%m%dT%H%M%SZ)"
                cp -p "$cmdline" "$backup"
                # One line of words: drop the console words, keep every other one.
                words=$(tr ' \n' '\n\n' <"$cmdline" | grep -vE '^console=(serial0|ttyAMA0|ttyS0)(,|$)' | grep -v '^$' | paste -sd' ' -)
                printf '%s\n' "$words" >"$cmdline"
                reboot_needed=1
                say "removed it from ${cmdline#"$R"}; the old file is ${backup#"$R"}"
            else
                say "not changed: remove it by hand, or re-run with --yes"
            fi
        fi
    fi
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
echo "  sudo qatysu enroll --portal https://PORTAL --token TOKEN"
echo "  sudo systemctl start qatysu-agent"
echo "  sudo qatysu doctor"
