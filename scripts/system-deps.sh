#!/usr/bin/env bash
# Installs the Debian packages hanseek needs outside Python, only when missing:
#   chromium (browser tests), tesseract-ocr + Korean data (page-photo OCR), wrk (HTTP load in bench.feed).
# Usage: scripts/system-deps.sh [chromium] [ocr] [wrk]
set -euo pipefail
want=()
for what in "$@"; do
  case "$what" in
    chromium) command -v chromium >/dev/null 2>&1 || want+=(chromium) ;;
    wrk) command -v wrk >/dev/null 2>&1 || want+=(wrk) ;;
    ocr)
      command -v tesseract >/dev/null 2>&1 || want+=(tesseract-ocr)
      if ! (tesseract --list-langs 2>/dev/null | grep -qx kor); then want+=(tesseract-ocr-kor); fi ;;
    *) echo "unknown component: $what" >&2; exit 2 ;;
  esac
done
[ ${#want[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "hanseek: please install these Debian packages: ${want[*]}" >&2; exit 1
  fi
fi
echo "hanseek: installing ${want[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
