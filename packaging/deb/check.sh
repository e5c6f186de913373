#!/usr/bin/env bash
# Builds the Debian package and checks it: file list, control fields, conffiles, maintainer
# scripts, then unpacks it and runs the packaged binary on the packaged default config.
#
#   packaging/deb/check.sh            # release build, then cargo deb --no-build
#   packaging/deb/check.sh --no-build # reuse an existing release build
#
# Needs cargo-deb (installed with `cargo install cargo-deb --locked` when missing) and dpkg-deb.
set -euo pipefail
cd "$(dirname "$0")/../.."

CARGO_DEB_VERSION=3.8.0
build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
  esac
done

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

command -v dpkg-deb >/dev/null || fail "dpkg-deb not found"
if ! cargo deb --version >/dev/null 2>&1; then
  echo "Installing cargo-deb $CARGO_DEB_VERSION"
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >/dev/null
fi

shopt -s nullglob
dashboards=(dashboards/*.json)
alerts=(alerts/*.yml)
[ "${#dashboards[@]}" -gt 0 ] || fail "no dashboards/*.json to package"
[ "${#alerts[@]}" -gt 0 ] || fail "no alerts/*.yml to package"

if [ "$build" = 1 ]; then
  cargo build --release --locked
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo deb --no-build --locked --output "$work/" >"$work/cargo-deb.log" 2>&1 || {
  cat "$work/cargo-deb.log" >&2
  fail "cargo deb"
}
debs=("$work"/*.deb)
[ "${#debs[@]}" -eq 1 ] || fail "expected one .deb in $work, found ${#debs[@]}"
deb=${debs[0]}
ddebs=("$work"/*-dbgsym_*.ddeb)
[ "${#ddebs[@]}" -eq 1 ] || fail "expected one -dbgsym .ddeb in $work, found ${#ddebs[@]}"
echo "Package: $deb (debug symbols: $(basename "${ddebs[0]}"))"

# File list.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$work/files"
has_file() { grep -qxF "$1" "$work/files" || fail "package lacks $1"; }
has_file /usr/bin/inferprobe
has_file /etc/inferprobe/config.yml
has_file /usr/share/doc/inferprobe/examples/example.yml
has_file /usr/share/doc/inferprobe/examples/demo.yml
for f in "${dashboards[@]}"; do has_file "/usr/share/inferprobe/dashboards/$(basename "$f")"; done
for f in "${alerts[@]}"; do has_file "/usr/share/inferprobe/alerts/$(basename "$f")"; done
unit=$(grep -xE '(/usr)?/lib/systemd/system/inferprobe\.service' "$work/files" || true)
[ -n "$unit" ] || fail "package lacks the systemd unit"
ok "file list ($(grep -cv '/$' "$work/files") files, unit at $unit)"

# Modes: the binary executable, the config readable by root and the service group only.
dpkg-deb -c "$deb" | awk '$6 == "./usr/bin/inferprobe" {print $1}' | grep -qx -- '-rwxr-xr-x' \
  || fail "/usr/bin/inferprobe is not 0755"
dpkg-deb -c "$deb" | awk '$6 == "./etc/inferprobe/config.yml" {print $1}' | grep -qx -- '-rw-r-----' \
  || fail "/etc/inferprobe/config.yml is not 0640"
ok "modes"

# Control fields.
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = inferprobe ] || fail "Package: $(field Package)"
version=$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="inferprobe"))')
case "$(field Version)" in "$version"-*) ;; *) fail "Version: $(field Version), crate $version" ;; esac
[ -n "$(field Maintainer)" ] || fail "no Maintainer"
[ "$(field Section)" = net ] || fail "Section: $(field Section)"
[ "$(field Priority)" = optional ] || fail "Priority: $(field Priority)"
depends=$(field Depends)
grep -q 'libc6' <<<"$depends" || fail "Depends lacks libc6: $depends"
grep -q 'adduser' <<<"$depends" || fail "Depends lacks adduser: $depends"
ok "control fields (Version $(field Version), Depends: $depends)"

# Conffiles and maintainer scripts.
mkdir "$work/control"
dpkg-deb -e "$deb" "$work/control"
grep -qxF /etc/inferprobe/config.yml "$work/control/conffiles" || fail "config.yml is not a conffile"
for script in postinst prerm postrm; do
  [ -x "$work/control/$script" ] || fail "no executable $script"
  sh -n "$work/control/$script" || fail "$script: shell syntax"
  ! grep -q '#DEBHELPER#' "$work/control/$script" || fail "$script: #DEBHELPER# left unexpanded"
done
grep -q 'adduser --system --group' "$work/control/postinst" || fail "postinst does not create the user"
grep -q 'deb-systemd-helper enable inferprobe.service' "$work/control/postinst" \
  || fail "postinst does not enable the unit"
grep -q 'restart' "$work/control/postinst" || fail "postinst does not restart the unit on upgrade"
grep -q 'purge' "$work/control/postrm" || fail "postrm has no purge branch"
# The user must exist before the generated fragment starts the service.
user_line=$(grep -n 'adduser --system' "$work/control/postinst" | head -n 1 | cut -d: -f1)
start_line=$(grep -n 'deb-systemd-invoke' "$work/control/postinst" | head -n 1 | cut -d: -f1)
if [ -z "$start_line" ] || [ "$user_line" -ge "$start_line" ]; then
  fail "postinst starts the unit before creating the user"
fi
ok "conffiles and maintainer scripts"

# Unpack and run what was installed.
root="$work/root"
dpkg-deb -x "$deb" "$root"
cmp -s "$root$unit" packaging/systemd/inferprobe.service || fail "packaged unit differs from packaging/systemd/inferprobe.service"
"$root/usr/bin/inferprobe" --version | grep -qF "$version" || fail "--version does not print $version"
"$root/usr/bin/inferprobe" check-config "$root/etc/inferprobe/config.yml" || fail "check-config on the packaged config"
ok "unpacked binary: $("$root/usr/bin/inferprobe" --version)"
if command -v readelf >/dev/null; then
  ! readelf -SW "$root/usr/bin/inferprobe" | grep -qE '\.debug_(info|line) ' || fail "packaged binary is not stripped"
  ok "packaged binary is stripped ($(stat -c %s "$root/usr/bin/inferprobe") bytes)"
fi

if command -v systemd-analyze >/dev/null; then
  # verify resolves ExecStart and the units it orders after inside --root.
  mkdir -p "$root/bin" "$root/lib/systemd"
  cp /bin/kill "$root/bin/kill"
  cp -r /lib/systemd/system "$root/lib/systemd/"
  systemd-analyze verify --root="$root" inferprobe.service || fail "systemd-analyze verify"
  ok "systemd-analyze verify"
else
  echo "skip: systemd-analyze not found"
fi

echo "PASS: $(basename "$deb")"
