"""The README stays a front page that names every module, and the documentation's links hold.

- Every module (a .py file under mmp_jax/ other than an `__init__.py`, tools/*.py, benchmarks/*.py)
  is named, as its path in backticks, in the first column of the README's module table; the
  configs (mmp_jax/configs/*.py) may be named together as `mmp_jax/configs/`. A path the table
  names exists.
- The README has at most MAX_LINES lines (the rest belongs in docs/).
- Every relative link of README.md and docs/*.md points at a file or folder that exists and, where
  it names an anchor (`page.md#heading`), at a heading of that page.

Text only: nothing here imports jax or the package.
"""
import pathlib
import re

import pytest
from tests.conftest import REPO

README = REPO / 'README.md'
MAX_LINES = 150
# Folders whose modules may be named by one row for the folder.
GROUPED = ('mmp_jax/configs/',)

_LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
_CODE_SPAN = re.compile(r'`[^`]*`')


def modules() -> list[str]:
    found = [p for p in (REPO / 'mmp_jax').rglob('*.py') if p.name != '__init__.py']
    found += [p for folder in ('tools', 'benchmarks') for p in (REPO / folder).glob('*.py') if p.name != '__init__.py']
    return sorted(p.relative_to(REPO).as_posix() for p in found)


def table_paths(text: str) -> set[str]:
    """Backticked paths in the first column of the README's table rows."""
    paths = set()
    for line in text.splitlines():
        cells = line.split('|')
        if line.startswith('|') and len(cells) > 2:
            paths.update(re.findall(r'`([^`]+)`', cells[1]))
    return paths


def test_every_module_is_in_the_readme_table():
    named = table_paths(README.read_text(encoding='utf-8'))
    missing = [m for m in modules() if m not in named and not any(m.startswith(g) and g in named for g in GROUPED)]
    assert not missing, f'README.md: add a row to its module table for {", ".join(missing)}'


def test_the_readme_table_names_only_what_exists():
    named = table_paths(README.read_text(encoding='utf-8'))
    stale = sorted(p for p in named if ('/' in p or p.endswith('.py')) and not (REPO / p).exists())
    assert not stale, f'README.md: its module table names paths that do not exist: {", ".join(stale)}'


def test_the_readme_is_a_front_page():
    lines = README.read_text(encoding='utf-8').splitlines()
    assert len(lines) <= MAX_LINES, (f'README.md has {len(lines)} lines (at most {MAX_LINES}): '
                                     'move the detail to a docs/ page and link it')


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lowercase, punctuation dropped, spaces as hyphens,
    a repeated anchor numbered (`-1`, `-2`)."""
    anchors, seen, fenced = set(), {}, False
    for line in text.splitlines():
        if line.lstrip().startswith('```'):
            fenced = not fenced
        match = None if fenced else re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
        if match:
            slug = re.sub(r'[^\w\- ]', '', match.group(1).lower()).replace(' ', '-')
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f'{slug}-{count}')
    return anchors


def relative_links(page: pathlib.Path) -> list[str]:
    """The targets of the page's markdown links that are not URLs, outside code blocks and spans."""
    targets, fenced = [], False
    for line in page.read_text(encoding='utf-8').splitlines():
        if line.lstrip().startswith('```'):
            fenced = not fenced
        if fenced or line.startswith('    '):
            continue
        targets += [t for t in _LINK.findall(_CODE_SPAN.sub('', line))
                    if not re.match(r'[a-z][a-z0-9+.-]*:', t, re.IGNORECASE)]
    return targets


PAGES = [README] + sorted((REPO / 'docs').glob('*.md'))


@pytest.mark.parametrize('page', PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_point_at_files_that_exist(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition('#')
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f'{target} (no {file.relative_to(REPO) if file.is_relative_to(REPO) else file})')
        elif anchor and file.suffix == '.md' and anchor not in heading_anchors(file.read_text(encoding='utf-8')):
            broken.append(f'{target} (no heading #{anchor} in {file.relative_to(REPO)})')
    assert not broken, f'{page.relative_to(REPO)}: broken links: {"; ".join(broken)}'


def test_the_docs_pages_exist():
    assert PAGES[1:], 'docs/*.md: no pages'
