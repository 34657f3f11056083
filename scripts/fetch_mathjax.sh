#!/usr/bin/env bash
# Fetch a local copy of MathJax 3 for the book, so that its maths renders offline
# (file:// or a local web server) instead of depending on a CDN.
#
#   bash scripts/fetch_mathjax.sh          # idempotent: does nothing when the copy is current
#   bash scripts/fetch_mathjax.sh --force  # fetch and unpack again
#
# Source: the npm package mathjax@$VERSION (npm pack, or the registry tarball with curl when
# npm is missing). The tarball's sha512 is checked against the pinned npm integrity string.
# Result: book/_mathjax/mathjax/tex-chtml.js (+ fonts, extensions), which _config.yml puts
# into the built site as _static/mathjax/ (a relative path, so file:// works).
set -euo pipefail

VERSION="3.2.2"
# npm's dist.integrity for mathjax@3.2.2 (`npm view mathjax@3.2.2 dist.integrity`).
INTEGRITY="sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
TARBALL_URL="https://registry.npmjs.org/mathjax/-/mathjax-${VERSION}.tgz"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="$ROOT/scripts/.cache"
DEST="$ROOT/book/_mathjax"
STAMP="$DEST/.mathjax-version"
TGZ="$CACHE/mathjax-${VERSION}.tgz"
# What the site needs from es5/: the entry point (tex-chtml.js) and what it loads on demand.
KEEP=(tex-chtml.js tex-svg.js core.js loader.js startup.js a11y adaptors input output sre ui)

die() { echo "fetch_mathjax: $*" >&2; exit 1; }

integrity_of() {  # npm-style "sha512-<base64>" of a file (python3, else openssl)
  local out=""
  out="$(python3 -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$1" 2>/dev/null)" \
    || out="$(openssl dgst -sha512 -binary "$1" 2>/dev/null | base64 | tr -d '\n')" || true
  [[ -n "$out" && "$out" != "sha512-" ]] || die "cannot compute a sha512 (need python3 or openssl)"
  [[ "$out" == sha512-* ]] || out="sha512-$out"
  echo "$out"
}

if [[ "${1:-}" != "--force" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION $INTEGRITY" \
      && -s "$DEST/mathjax/tex-chtml.js" && -d "$DEST/mathjax/output/chtml/fonts/woff-v2" ]]; then
  echo "fetch_mathjax: MathJax $VERSION already in book/_mathjax (verified stamp); nothing to do."
  exit 0
fi

mkdir -p "$CACHE"
if [[ -f "$TGZ" && "$(integrity_of "$TGZ")" != "$INTEGRITY" ]]; then
  echo "fetch_mathjax: cached tarball fails the integrity check; fetching again." >&2
  rm -f "$TGZ"
fi
if [[ ! -f "$TGZ" ]]; then
  if command -v npm >/dev/null 2>&1; then
    (cd "$CACHE" && npm pack "mathjax@${VERSION}" --silent >/dev/null) \
      || die "npm pack mathjax@${VERSION} failed (is the npm registry reachable?)"
  elif command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 3 -o "$TGZ.part" "$TARBALL_URL" && mv "$TGZ.part" "$TGZ" \
      || die "download of $TARBALL_URL failed"
  else
    die "need npm or curl to fetch mathjax@${VERSION}"
  fi
fi
[[ -f "$TGZ" ]] || die "expected $TGZ after download"
GOT="$(integrity_of "$TGZ")"
[[ "$GOT" == "$INTEGRITY" ]] || { rm -f "$TGZ"; die "integrity mismatch for $TGZ: got $GOT, want $INTEGRITY"; }

# Unpack into a temporary folder and swap it in, so an interrupted run leaves no half copy.
TMP="$(mktemp -d "$CACHE/unpack.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
tar -xzf "$TGZ" -C "$TMP"
mkdir -p "$TMP/new/mathjax"
for item in "${KEEP[@]}"; do
  [[ -e "$TMP/package/es5/$item" ]] || die "mathjax@${VERSION} lacks es5/$item"
  cp -R "$TMP/package/es5/$item" "$TMP/new/mathjax/"
done
cp "$TMP/package/LICENSE" "$TMP/new/mathjax/LICENSE"
[[ -s "$TMP/new/mathjax/tex-chtml.js" ]] || die "tex-chtml.js missing after unpacking"
echo "$VERSION $INTEGRITY" > "$TMP/new/.mathjax-version"
rm -rf "$DEST"
mv "$TMP/new" "$DEST"
echo "fetch_mathjax: MathJax $VERSION (integrity verified) -> ${DEST#"$ROOT"/}/mathjax ($(du -sh "$DEST" | cut -f1))"
