"""Render every page of the built book to a PNG with headless Chromium, to look at before a report ships.

    python tests/render_pages.py [_build/html] [_build/screenshots] [--width 1400] [--height 2000]

Uses the Debian ``chromium`` package (``CHROMIUM`` overrides the binary); each page gets a throw-away
profile folder and no network services, so the screenshots show what an offline reader sees. One PNG per
HTML page, named after its path (``book/figure1.html`` -> ``book__figure1.png``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Switches that keep Chromium from phoning home or prompting, so a render is the page alone.
QUIET_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--virtual-time-budget=5000"]


def pages(site: Path) -> list[Path]:
    """The HTML pages of a built book (search, genindex and the theme's own files left out)."""
    skip = {"search.html", "genindex.html"}
    return sorted(p for p in site.rglob("*.html")
                  if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts)


def render(page: Path, png: Path, *, browser: str, width: int, height: int) -> None:
    """Screenshot one page into ``png``; raises ``CalledProcessError`` when Chromium fails."""
    with tempfile.TemporaryDirectory(prefix="probeft-chromium-") as profile:
        subprocess.run([browser, *QUIET_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        f"--screenshot={png}", page.resolve().as_uri()],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", default="_build/html")
    parser.add_argument("out", nargs="?", default="_build/screenshots")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2000)
    args = parser.parse_args(argv)
    browser = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("render_pages: no chromium on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    site, out = Path(args.site), Path(args.out)
    found = pages(site)
    if not found:
        print(f"render_pages: no HTML pages under {site} (build the book first: make book)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    for page in found:
        png = out / ("__".join(page.relative_to(site).with_suffix("").parts) + ".png")
        render(page, png, browser=browser, width=args.width, height=args.height)
        print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
