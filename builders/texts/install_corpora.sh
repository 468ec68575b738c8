#!/bin/sh
# Install the offline corpora of the mini text set (idempotent; run as root for apt-get).
#   Debian packages: sword-text-web (World English Bible), jargon-text, fortunes, fortunes-min.
#   The gensim 4.4.0 wheel (Wikipedia sample; downloaded only, never installed) goes into
#   ${LLKL_DB_CORPORA:-${XDG_CACHE_HOME:-$HOME/.cache}/llkl-db/corpora}, where the builder looks.
set -eu

PACKAGES="sword-text-web jargon-text fortunes fortunes-min"
CACHE="${LLKL_DB_CORPORA:-${XDG_CACHE_HOME:-$HOME/.cache}/llkl-db/corpora}"
PYTHON="${PYTHON:-python3}"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -q
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi

mkdir -p "$CACHE"
if ! ls "$CACHE"/gensim-4.4.0-*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip download --quiet --no-deps gensim==4.4.0 -d "$CACHE"
fi
echo "corpora ready: $PACKAGES; $(ls "$CACHE"/gensim-4.4.0-*.whl)"
