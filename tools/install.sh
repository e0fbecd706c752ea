#!/usr/bin/env bash
# Install ShelfID on a shelf device (idempotent: run it again to update).
#
#   sudo tools/install.sh                 install into / and enable the units
#   tools/install.sh --root /tmp/r        install into a disposable root (tests, image builds)
#   sudo tools/install.sh --start         ... and start the daemon now
#
# What it does: the `shelfid` system user (systemd-sysusers, in group video), /etc/shelfid with a config
# written from config.example.yaml when there is none, empty credential files (filled by you), a venv in
# /opt/shelfid/venv with this checkout installed (--system-site-packages, so JetPack's TensorRT and
# OpenCV are used where present) and /usr/local/bin/shelfid pointing into it, the systemd units (enabled),
# TensorRT engines for the bundled models when TensorRT is importable, and `shelfid check-config` on the result.
set -euo pipefail

ROOT=""
START=0
PYTHON="${PYTHON:-python3}"
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="$(realpath -m "$2")"; shift 2 ;;
        --start) START=1; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { echo "install: $*"; }
die() { echo "install: error: $*" >&2; exit 1; }

[ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || die "run as root (or with --root DIR for a disposable root)"
for exported in embedder.onnx product-detector-320.onnx; do  # made from the .pt weights by `make install`
    [ -f "$SRC/models/weights/$exported" ] || die "$SRC/models/weights/$exported is missing: run \`make install\` on a machine with PyTorch first, or copy it there"
done
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "Python 3.10+ needed ($PYTHON is $("$PYTHON" -V 2>&1))"

OPT="$ROOT/opt/shelfid"
ETC="$ROOT/etc/shelfid"
UNITS="$ROOT/etc/systemd/system"

# 1. the system user, declaratively (works on a root directory as well as on the running system)
install -d -m 0755 "$ROOT/usr/lib/sysusers.d"
cat > "$ROOT/usr/lib/sysusers.d/shelfid.conf" <<'SYSUSERS'
u shelfid - "ShelfID edge daemon" /var/lib/shelfid /usr/sbin/nologin
m shelfid video
SYSUSERS
if [ -n "$ROOT" ]; then
    install -d -m 0755 "$ROOT/etc"
    systemd-sysusers --root="$ROOT" "$ROOT/usr/lib/sysusers.d/shelfid.conf"
else
    systemd-sysusers /usr/lib/sysusers.d/shelfid.conf
fi
say "user shelfid (group video)"

# 2. folders; the state and cache folders are created and owned by systemd (StateDirectory=, CacheDirectory=)
install -d -m 0755 "$ETC" "$OPT" "$UNITS"
install -d -m 0700 "$ETC/credentials"
for secret in mqtt-password sync-token web-token; do
    # empty = not used; LoadCredential= needs the file to exist
    [ -e "$ETC/credentials/$secret" ] || install -m 0600 /dev/null "$ETC/credentials/$secret"
done

# 3. the venv and the package (an update reinstalls the package, not its unchanged dependencies)
if [ ! -x "$OPT/venv/bin/python" ]; then
    "$PYTHON" -m venv --system-site-packages "$OPT/venv"
    say "venv $OPT/venv"
fi
# the dependencies at the versions the test suite ran with: requirements.lock as constraints, without its hashes
# (pip's hash-checking mode would also demand one for this checkout, which has none)
sed -e '/^ *--hash/d' -e 's/ *\\$//' "$SRC/requirements.lock" > "$OPT/constraints.txt"
"$OPT/venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade -c "$OPT/constraints.txt" "$SRC" \
    || die "pip could not install $SRC into $OPT/venv"
# JetPack's OpenCV is built with GStreamer (nvarguscamerasrc, hardware decoding); pip's wheel is not. When the
# system one has it, drop the pip copy so the venv (made with --system-site-packages) imports the system one.
if "$PYTHON" -c 'import cv2, re, sys; sys.exit(not re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()))' 2>/dev/null; then
    "$OPT/venv/bin/python" -m pip uninstall --quiet --yes opencv-python-headless
    say "using the system OpenCV (built with GStreamer) instead of pip's"
fi
install -m 0644 "$SRC/README.md" "$OPT/README.md"
# `shelfid` on PATH (sudo's secure_path has /usr/local/bin), pointing into the venv as the device will see it
install -d -m 0755 "$ROOT/usr/local/bin"
ln -sfn /opt/shelfid/venv/bin/shelfid "$ROOT/usr/local/bin/shelfid"
say "package $("$OPT/venv/bin/python" -c 'from importlib.metadata import version; print(version("shelfid"))') in $OPT/venv (command: /usr/local/bin/shelfid)"

# 4. the config, only when there is none: never overwrite what an installer edited
if [ ! -e "$ETC/config.yaml" ]; then
    sed -e 's|^  data_dir: .*|  data_dir: /var/lib/shelfid          # systemd StateDirectory=|' \
        -e 's|^  engine_cache_dir: .*|  engine_cache_dir: /var/cache/shelfid/engines  # systemd CacheDirectory=|' \
        "$SRC/config.example.yaml" > "$ETC/config.yaml.tmp"
    chmod 0644 "$ETC/config.yaml.tmp"
    mv "$ETC/config.yaml.tmp" "$ETC/config.yaml"
    say "wrote $ETC/config.yaml from config.example.yaml: set device.id, camera.source and mqtt.host"
else
    say "kept $ETC/config.yaml"
fi

# 5. units: the edge daemon, sync by timer and by the daemon's push trigger
for unit in shelfid-edge.service shelfid-sync.service shelfid-sync.timer shelfid-sync.path; do
    install -m 0644 "$SRC/systemd/$unit" "$UNITS/$unit"
done
if [ -n "$ROOT" ]; then
    systemctl --root="$ROOT" enable shelfid-edge.service shelfid-sync.timer shelfid-sync.path >/dev/null 2>&1
else
    systemctl daemon-reload
    systemctl enable shelfid-edge.service shelfid-sync.timer shelfid-sync.path
fi
say "units installed and enabled"

# 6. TensorRT engines for the installed models, when TensorRT is here (a Jetson); cached by ONNX hash + TRT + GPU
if "$OPT/venv/bin/python" -c 'import tensorrt' 2>/dev/null; then
    weights="$("$OPT/venv/bin/python" -c 'from models.runtime import WEIGHTS_DIR; print(WEIGHTS_DIR)')"
    for model in "$weights"/*.onnx; do
        "$OPT/venv/bin/shelfid" models build-engine "$model" --fp16 --cache-dir "$ROOT/var/cache/shelfid/engines" \
            || die "building the TensorRT engine for $model failed"
    done
    say "TensorRT engines in $ROOT/var/cache/shelfid/engines"
else
    say "TensorRT not importable: the daemon uses ONNX Runtime (engines are built on a Jetson)"
fi

# 7. check the config as the daemon will read it
"$OPT/venv/bin/shelfid" check-config "$ETC/config.yaml"
if [ "$START" = 1 ] && [ -z "$ROOT" ]; then
    systemctl restart shelfid-edge.service
    say "started; follow it with: journalctl -fu shelfid-edge"
fi
say "done. Next:"
say "  1. edit $ETC/config.yaml (device.id, camera.source, mqtt.*, sync.*) and put the secrets in $ETC/credentials/"
say "     (mqtt-password, sync-token, web-token: one line each; an empty file means not used)"
say "  2. sudo systemctl start shelfid-sync.timer shelfid-sync.path shelfid-sync.service"
say "     (the first sync installs the catalog and starts shelfid-edge)"
say "  3. sudo shelfid doctor --config /etc/shelfid/config.yaml"
