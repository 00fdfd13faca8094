#!/usr/bin/env bash
# Renders the shipped flow's own prompts (the ones the stock Asterisk set has no words for)
# into 8 kHz mono 16-bit WAVs beside this script. They were made once with this script and
# committed, so a fresh machine plays them without a TTS at call time; replace them with
# your own recordings (same file names) whenever you like.
# Needs: festival with festvox-us-slt-hts, sox.
set -euo pipefail
cd "$(dirname "$0")"
render() {  # id, text
  local raw
  raw=$(mktemp --suffix=.wav)
  echo "$2" | text2wave -eval '(voice_cmu_us_slt_arctic_hts)' -o "$raw"
  # 8 kHz mono 16-bit, leading/trailing silence trimmed, 150 ms of silence after
  sox "$raw" -r 8000 -c 1 -b 16 -e signed-integer "$1.wav" \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse pad 0 0.15 norm -3
  rm -f "$raw"
}
render welcome-hotline "Welcome to the hotline."
render main-menu "For sales, press 1. For support, press 2."
render main-menu-retry "Sorry, I did not get that. Press 1 for sales, or 2 for support."
render care-greeting "Welcome to the hotline. A colleague will be with you in a moment."
