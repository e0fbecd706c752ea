#!/usr/bin/env bash
# Remove ShelfID from a device. Keeps the data (/var/lib/shelfid: catalogs, outbox with unsent events)
# and the config (/etc/shelfid) unless --purge.
#
#   sudo tools/uninstall.sh [--purge]
#   tools/uninstall.sh --root /tmp/r [--purge]
set -euo pipefail

ROOT=""
PURGE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="$(realpath -m "$2")"; shift 2 ;;
        --purge) PURGE=1; shift ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "uninstall.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || { echo "uninstall: run as root (or with --root DIR)" >&2; exit 1; }

UNITS=(shelfid-edge.service shelfid-sync.service shelfid-sync.timer shelfid-sync.path)
if [ -n "$ROOT" ]; then
    systemctl --root="$ROOT" disable "${UNITS[@]}" >/dev/null 2>&1 || true
else
    systemctl disable --now "${UNITS[@]}" 2>/dev/null || true
fi
for unit in "${UNITS[@]}"; do rm -f "$ROOT/etc/systemd/system/$unit"; done
[ -n "$ROOT" ] || systemctl daemon-reload
rm -rf "$ROOT/opt/shelfid"
if [ "$(readlink "$ROOT/usr/local/bin/shelfid" 2>/dev/null)" = /opt/shelfid/venv/bin/shelfid ]; then rm -f "$ROOT/usr/local/bin/shelfid"; fi
echo "uninstall: units, /opt/shelfid and /usr/local/bin/shelfid removed"
if [ "$PURGE" = 1 ]; then
    rm -rf "$ROOT/etc/shelfid" "$ROOT/var/lib/shelfid" "$ROOT/var/cache/shelfid" "$ROOT/usr/lib/sysusers.d/shelfid.conf"
    if [ -n "$ROOT" ]; then
        for f in passwd group shadow gshadow; do
            [ -f "$ROOT/etc/$f" ] && sed -i '/^shelfid:/d; s/\(^video:.*\)[:,]shelfid$/\1/; s/,shelfid,/,/' "$ROOT/etc/$f"
        done
    else
        userdel shelfid 2>/dev/null || true
    fi
    echo "uninstall: config, data, cache and the shelfid user removed (--purge)"
else
    echo "uninstall: kept /etc/shelfid and /var/lib/shelfid (catalogs, unsent events); --purge removes them"
fi
