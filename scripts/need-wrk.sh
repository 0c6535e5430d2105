#!/usr/bin/env bash
# Sourced by the benchmark scripts: makes sure wrk (the Debian package) is on PATH, installing it
# with apt-get when this user may; otherwise says how and stops.
if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is not installed: installing it (apt-get install wrk)…" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q wrk >/dev/null; elif command -v sudo >/dev/null; then sudo apt-get install -y -q wrk >/dev/null; fi
  command -v wrk >/dev/null 2>&1 || { echo "could not install wrk: run apt-get install wrk" >&2; exit 1; }
fi
