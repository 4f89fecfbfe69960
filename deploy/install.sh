#!/usr/bin/env bash
# Install keycam's service on Raspberry Pi OS (bookworm or trixie), as root, from the checkout where the README's
# Raspberry Pi steps ran (its keycam.toml, the key and the keyed model it names):
#
#   sudo bash deploy/install.sh [CONFIG]        CONFIG: default keycam.toml in the checkout
#   sudo systemctl enable --now keycam          (install.sh does it itself where systemd runs)
#
# What it does (deploy/keycam.service says why each place):
#   1. copies the checkout's tracked files to /opt/keycam and makes its venv there (--system-site-packages, for
#      python3-picamera2; the `pi` extra), owned by root and readable by all: the service's dynamic user runs it;
#   2. copies the key to /etc/keycam/camera.key (mode 0600, root): systemd hands it to the service as the credential
#      camera.key (LoadCredential=), so keycam reads it from $CREDENTIALS_DIRECTORY and no file of the service's
#      user ever holds it;
#   3. copies the keyed model (and its sidecars: KEYED.manifest.json, KEYED.epochs.npz, ...) into the state folder,
#      /var/lib/private/keycam (StateDirectory= of a DynamicUser= service: only root and the service can enter it);
#   4. writes /etc/keycam/keycam.toml: CONFIG with [model] key = "credential:camera.key" and the model's paths made
#      relative to the state folder (the service's working directory);
#   5. installs the unit (and, where systemd is 254 or later, the restart backoff drop-in), then enables and starts it
#      where systemd is running (not in a chroot, a container build or scripts/arm64-check).
# KEYCAM_PREFIX, KEYCAM_ETC, KEYCAM_STATE and KEYCAM_UNITS move the four places (for tests); KEYCAM_NO_VENV=1 skips
# making the venv (for tests).
set -euo pipefail

say() { printf 'keycam install: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
config="$(realpath -m "${1:-$src/keycam.toml}")"
prefix="${KEYCAM_PREFIX:-/opt/keycam}"
etc="${KEYCAM_ETC:-/etc/keycam}"
state="${KEYCAM_STATE:-/var/lib/private/keycam}"
units="${KEYCAM_UNITS:-/etc/systemd/system}"
[ "$(id -u)" = 0 ] || [ -n "${KEYCAM_PREFIX:-}" ] || die "run as root: sudo bash deploy/install.sh"
[ -f "$config" ] || die "no configuration $config (the README's steps make keycam.toml: cp deploy/keycam.toml keycam.toml)"
command -v python3 > /dev/null || die "no python3 (sudo apt install python3-venv python3-picamera2)"

# --- 1. the code and its venv -----------------------------------------------------------------------------------
say "copying $src to $prefix"
mkdir -p "$prefix"
git=(git -c safe.directory="$src" -C "$src")  # as root in the user's clone: git refuses it as "dubious ownership"
if "${git[@]}" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    # tracked files only (never the keyed model, the key or results lying in the checkout), as they are now
    (cd "$src" && "${git[@]}" ls-files -z --cached | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -xf - -C "$prefix" --no-same-owner
else  # a copy of any other kind would carry the keyed model (the key's equal) into a folder everyone reads
    die "$src is not a git checkout: run it from the clone the README's steps made"
fi
chmod -R u=rwX,go=rX "$prefix"
if [ -z "${KEYCAM_NO_VENV:-}" ]; then
    say "making $prefix/.venv (--system-site-packages, keycam[pi])"
    python3 -m venv --system-site-packages "$prefix/.venv"
    "$prefix/.venv/bin/pip" install --quiet "$prefix[pi]"
    chmod -R u=rwX,go=rX "$prefix/.venv"
fi

# --- 2-4. the key, the model, the configuration ------------------------------------------------------------------
install -d -m 0755 "$etc"
install -d -m 0700 "$(dirname "$state")"
install -d -m 0700 "$state"
python3 - "$config" "$etc" "$state" << 'EOF'
"""The service's configuration from the user's: the key as a credential, the model in the state folder."""
import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

config, etc, state = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
base = config.parent  # relative paths in the user's configuration are relative to where it was used
settings = tomllib.loads(config.read_text()).get("model", {})


def where(value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


changes = {}
if settings.get("key", "").startswith("credential:"):
    sys.exit(f"{config}: [model] key is already a credential; give the configuration that names the key file")
if settings.get("key"):
    key = where(settings["key"])
    if not key.is_file():
        sys.exit(f"{config}: the key {key} does not exist")
    shutil.copyfile(key, etc / "camera.key")
    (etc / "camera.key").chmod(0o600)
    changes["key"] = "credential:camera.key"
else:
    print("keycam install: no [model] key: the embedded default's key is made in /var/lib/keycam/default",
          file=sys.stderr)
for field in ("path", "task"):
    if settings.get(field):
        model = where(settings[field])
        stem = model.name.removesuffix(".onnx")
        found = sorted(p for p in model.parent.glob(stem + ".*") if p.is_file())  # KEYED.onnx and its sidecars
        if model not in found:
            sys.exit(f"{config}: the model {model} does not exist")
        owner = state.stat()  # the service's dynamic user once it has run: systemd re-owns only a new folder
        for path in found:
            shutil.copyfile(path, state / path.name)
            (state / path.name).chmod(0o600)
            os.chown(state / path.name, owner.st_uid, owner.st_gid)
        changes[field] = model.name
lines, section = [], None
for line in config.read_text().splitlines():
    header = re.match(r"^\s*\[([^\]]+)\]", line)
    section = header.group(1).strip() if header else section
    field = re.match(r"^\s*(\w+)\s*=", line)
    if section == "model" and field and field.group(1) in changes:
        line = f'{field.group(1)} = "{changes.pop(field.group(1))}"'
    lines.append(line)
if changes:
    sys.exit(f"{config}: could not rewrite [model] {', '.join(changes)} (write them as `name = \"value\"` lines)")
(etc / "keycam.toml").write_text("\n".join(lines) + "\n")
(etc / "keycam.toml").chmod(0o644)
print(f"keycam install: wrote {etc / 'keycam.toml'} ([model] key = credential:camera.key; models in {state})",
      file=sys.stderr)
EOF

# --- 5. the unit ------------------------------------------------------------------------------------------------
install -d -m 0755 "$units"
sed -e "s|/opt/keycam|$prefix|g" -e "s|/etc/keycam|$etc|g" "$src/deploy/keycam.service" > "$units/keycam.service"
chmod 0644 "$units/keycam.service"
version="$(systemctl --version 2> /dev/null | awk 'NR == 1 {print $2}' || true)"
if [ -n "$version" ] && [ "${version%%.*}" -ge 254 ] 2> /dev/null; then
    install -d -m 0755 "$units/keycam.service.d"
    install -m 0644 "$src/deploy/keycam.service.d/backoff.conf" "$units/keycam.service.d/backoff.conf"
    say "systemd $version: restart backoff from 5 s to 5 min (keycam.service.d/backoff.conf)"
else
    say "systemd ${version:-unknown}: restarts 5 s apart (RestartSteps= needs systemd 254)"
fi
if [ -d /run/systemd/system ] && [ -z "${KEYCAM_UNITS:-}" ]; then
    systemctl daemon-reload
    systemctl enable --now keycam.service
    say "started: systemctl status keycam; journalctl -u keycam -f"
else
    say "systemd is not running here: the unit is installed, not started (systemctl enable --now keycam on the Pi)"
fi
