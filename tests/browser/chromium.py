"""Debian's Chromium and the flags every headless run here uses (never a downloaded browser).
Plain constants, so benchmarks can share them without importing pytest."""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
