"""Checks on the built HTML book: what a reader would see wrong, found without a browser.

A page fails when a table is cut (pandas' ``...`` rows or columns, or its "N rows x M columns"
footer), when a result figure has no caption, or when a caption's (or a table title's) figure or
table number is not the number its section heading gives. ``probeft book`` runs
:func:`check_site` after every build, so a report with such a page is never reported as built.

Parsing uses BeautifulSoup (a dependency of the book's Sphinx theme), imported when a check runs.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["check_page", "check_site"]

_FOOTER = re.compile(r"\b\d+\s+rows\s*[×x]\s*\d+\s+columns\b")
_ELLIPSIS = {"...", "…"}
_NUMBERED = re.compile(r"^\s*(Figure|Fig\.|Table)\s+(\d+)\b")
# A heading names the numbers of its section, e.g. "Tables 2 and 5, Figures 4 and 5: ...".
_HEADING_NUMBERS = re.compile(r"\b(Figures?|Tables?)\s+(\d+(?:\s*(?:,|and)\s*\d+)*)")


def _kind(word: str) -> str:
    return "table" if word.lower().startswith("table") else "figure"


def _heading_numbers(text: str) -> dict[str, set[int]]:
    numbers: dict[str, set[int]] = {}
    for word, listed in _HEADING_NUMBERS.findall(text):
        numbers.setdefault(_kind(word), set()).update(int(n) for n in re.findall(r"\d+", listed))
    return numbers


def _numbered_against_heading(element, label: str, text: str) -> list[str]:
    """A "Figure N" / "Table N" label must carry a number of its section's heading (when that heading has any)."""
    match = _NUMBERED.match(text)
    if match is None:
        return []
    kind, number = _kind(match.group(1)), int(match.group(2))
    for heading in element.find_all_previous(["h1", "h2", "h3"]):
        named = _heading_numbers(heading.get_text(" ", strip=True))
        if kind in named:
            if number not in named[kind]:
                said = heading.get_text(" ", strip=True)[:60]
                return [f"{label} {text[:60]!r} is {kind} {number}, but its heading {said!r} says {sorted(named[kind])}"]
            return []
    return []


def check_page(html: str, *, captions: bool = True) -> list[str]:
    """Problems a reader would see on one built page.

    Args:
        html: the page's HTML.
        captions: also require a caption on every figure drawn by a page's code (off for the executed
            notebooks, whose plots are the notebooks' own outputs).

    Returns:
        One line per problem; empty when the page is fine.
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    main = soup.find("main") or soup
    problems = []
    for index, table in enumerate(main.find_all("table"), start=1):
        cells = [cell.get_text(strip=True) for cell in table.find_all(["td", "th"])]
        if any(cell in _ELLIPSIS for cell in cells):
            problems.append(f"table {index} is truncated: it has '...' rows or columns")
    text = main.get_text(" ", strip=True)
    for footer in _FOOTER.findall(text):
        problems.append(f"a pandas footer {footer!r}: a table was cut by pandas' display limits")
    for figure in main.find_all("figure"):
        caption = figure.find("figcaption")
        caption_text = caption.get_text(" ", strip=True) if caption else ""
        if not caption_text:
            problems.append("a figure without a caption")
            continue
        # Sphinx's own running number ("Fig. 6") and the caption's text must agree with the heading.
        number = figure.find("span", class_="caption-number")
        if number is not None:
            problems += _numbered_against_heading(figure, "figure number", number.get_text(" ", strip=True))
        text_node = figure.find("span", class_="caption-text")
        problems += _numbered_against_heading(figure, "caption", (text_node or caption).get_text(" ", strip=True))
    if captions:
        for image in main.select("div.cell_output img"):
            if image.find_parent("figure") is None:
                problems.append(f"a figure without a caption ({image.get('src', '?')[:60]})")
    # A section named after a figure shows one, unless the page says what the run lacks (a figure cell
    # whose plot was never displayed leaves the heading above nothing).
    for heading in [] if "Not in this run" in text else main.find_all(["h1", "h2", "h3"]):
        section = heading.find_parent("section")
        if section is not None and "figure" in _heading_numbers(heading.get_text(" ", strip=True)) \
                and section.find("img") is None:
            problems.append(f"section {heading.get_text(' ', strip=True)[:60]!r} shows no figure")
    for title in main.select(".probeft-table-title"):
        problems += _numbered_against_heading(title, "table title", title.get_text(" ", strip=True))
    return problems


def check_site(site: str | Path) -> dict[str, list[str]]:
    """:func:`check_page` on every page of a built book.

    Args:
        site: the build's HTML folder (``_build/html``).

    Returns:
        Page path (relative to ``site``) -> its problems, for the pages that have any.
    """
    site = Path(site)
    found = {}
    for page in sorted(site.rglob("*.html")):
        relative = page.relative_to(site)
        if relative.parts[0] in {"_static", "_sources"} or page.name in {"search.html", "genindex.html"}:
            continue
        problems = check_page(page.read_text(encoding="utf-8"), captions="notebooks" not in relative.parts)
        if problems:
            found[relative.as_posix()] = problems
    return found
