#!/usr/bin/env bash
# Build dist/stagger_<version>_<arch>.deb with dpkg-deb: a self-contained virtual environment
# in /usr/lib/stagger/venv (stagger and its dependencies from PyPI, on Debian 12's
# /usr/bin/python3), /usr/bin/stagger, the units, a preset that keeps them disabled, a commented
# example in /etc/stagger/config.d (a conffile), the docs, and man pages when the project can
# write them (`python -m stagger.cli.manpage OUTDIR`).
# Usage: packaging/debian/build-deb.sh [OUTDIR]   (run from anywhere; needs network to PyPI)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
TOP="$(cd "$HERE/../.." && pwd)"
OUT="$(mkdir -p "${1:-$TOP/dist}" && cd "${1:-$TOP/dist}" && pwd)"
PY=/usr/bin/python3

die() { echo "build-deb: $*" >&2; exit 1; }
[ -x "$PY" ] || die "$PY is missing: install Debian's python3 (apt-get install python3 python3-venv)"
PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$PYVER" = "3.11" ] || die "$PY is Python $PYVER; the package is for Debian 12's Python 3.11"
"$PY" -c 'import ensurepip' 2>/dev/null \
    || die "$PY cannot make a virtual environment: apt-get install python3-venv"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing: apt-get install dpkg-dev"

VERSION="$("$PY" -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$TOP/pyproject.toml")"
ARCH="$(dpkg --print-architecture)"
DEB="$OUT/stagger_${VERSION}_${ARCH}.deb"

# The staging tree. Its path is written into the venv's scripts while pip installs, and then
# rewritten to the installed path, so keep it short (a long one makes pip use a sh wrapper).
STAGE="$(mktemp -d /tmp/stagger-deb.XXXXXX)"
trap 'rm -rf "$STAGE"' EXIT
ROOT="$STAGE/root"
VENV_AT=/usr/lib/stagger/venv
VENV="$ROOT$VENV_AT"

echo "build-deb: venv with $PY ($PYVER) for stagger $VERSION ($ARCH)"
mkdir -p "$ROOT/usr/lib/stagger"
"$PY" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_COMPILE=1 PYTHONDONTWRITEBYTECODE=1
# Build from a copy of the project (what the wheel is made of), so the checkout gets no build/
# or egg-info. pip's notes about index locations of this machine's configuration are dropped.
mkdir "$STAGE/src"
cp -a "$TOP/pyproject.toml" "$TOP/README.md" "$TOP/src" "$STAGE/src/"
find "$STAGE/src" -name __pycache__ -type d -prune -exec rm -rf {} +
"$VENV/bin/python" -m pip install -q --no-compile "$STAGE/src" \
    2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)
"$VENV/bin/python" -m pip uninstall -q -y pip setuptools >/dev/null 2>&1 || true

# Man pages, when the project has the module that writes them.
MAN="$STAGE/man"
if "$VENV/bin/python" -c 'import importlib.util,sys; sys.exit(importlib.util.find_spec("stagger.cli.manpage") is None)'; then
    mkdir -p "$MAN"
    "$VENV/bin/python" -m stagger.cli.manpage "$MAN"
    mkdir -p "$ROOT/usr/share/man/man1"
    for page in "$MAN"/*.1; do
        [ -e "$page" ] || continue
        gzip -9n -c "$page" > "$ROOT/usr/share/man/man1/$(basename "$page").gz"
    done
else
    echo "build-deb: no stagger.cli.manpage in this tree: no man pages"
fi

# No byte-code in the package (postinst compiles it), no activate scripts, and the staging path
# replaced by the installed one wherever pip or venv wrote it (script shebangs, pyvenv.cfg).
find "$VENV" -name __pycache__ -type d -prune -exec rm -rf {} +
find "$VENV" -name '*.pyc' -delete
rm -f "$VENV"/lib/python3*/site-packages/stagger-*.dist-info/direct_url.json
rm -f "$VENV"/bin/activate* "$VENV"/bin/Activate.ps1
grep -rlI --null -F "$VENV" "$VENV" | xargs -0 -r sed -i "s|$VENV|$VENV_AT|g"
if grep -rqF "$STAGE" "$VENV"; then
    die "the staging path is still written in: $(grep -rlF "$STAGE" "$VENV" | head -3)"
fi
# Modes: directories 0755; nothing in site-packages is run directly (some wheels ship their
# modules and shared objects executable); only the venv's bin/ holds programs.
find "$ROOT" -type d -exec chmod 0755 {} +
find "$VENV" -type f -exec chmod go-w {} +
find "$VENV/lib" -type f -exec chmod a-x {} +
# The venv's links to the interpreter, relative (/usr/lib/stagger/venv/bin -> /usr/bin).
for link in "$VENV"/bin/*; do
    [ -L "$link" ] || continue
    target="$(readlink "$link")"
    case "$target" in /usr/bin/*) ln -sfn "../../../../bin/${target#/usr/bin/}" "$link" ;; esac
done

mkdir -p "$ROOT/usr/bin"
ln -s ../lib/stagger/venv/bin/stagger "$ROOT/usr/bin/stagger"

install -D -m 0644 "$TOP/packaging/systemd/stagger-agent.service" "$ROOT/lib/systemd/system/stagger-agent.service"
install -D -m 0644 "$TOP/packaging/systemd/stagger-server.service" "$ROOT/lib/systemd/system/stagger-server.service"
install -D -m 0644 "$HERE/80-stagger.preset" "$ROOT/lib/systemd/system-preset/80-stagger.preset"
install -D -m 0644 "$HERE/50-agent.toml" "$ROOT/etc/stagger/config.d/50-agent.toml"
install -d -m 0755 "$ROOT/var/lib/stagger"

DOC="$ROOT/usr/share/doc/stagger"
install -d "$DOC"
install -m 0644 "$HERE/copyright" "$DOC/copyright"
install -m 0644 "$TOP/README.md" "$TOP"/docs/*.md "$DOC/"
gzip -9n -c "$HERE/changelog" > "$DOC/changelog.gz"
install -D -m 0644 "$HERE/lintian-overrides" "$ROOT/usr/share/lintian/overrides/stagger"

install -d "$ROOT/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "$HERE/$script" "$ROOT/DEBIAN/$script"
done
echo /etc/stagger/config.d/50-agent.toml > "$ROOT/DEBIAN/conffiles"
SIZE="$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" \
    "$HERE/control.in" > "$ROOT/DEBIAN/control"
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -print0 | LC_ALL=C sort -z \
    | xargs -0 md5sum | sed 's|  \./|  |') > "$ROOT/DEBIAN/md5sums"

rm -f "$DEB"
dpkg-deb --root-owner-group -Zgzip -z6 --build "$ROOT" "$DEB" >/dev/null
echo "build-deb: $DEB ($(du -h "$DEB" | cut -f1))"
