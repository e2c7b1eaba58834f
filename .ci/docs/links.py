#!/usr/bin/env python3
"""Checks the relative links of README.md and every docs/*.md.

Every `[text](path)`, `[text](path#anchor)`, `[text](#anchor)` and `[ref]: path` must name a
file or folder of the repository, and an anchor must be a heading of the target Markdown file
(GitHub's rule: lower case, punctuation other than `-` and `_` dropped, spaces to `-`, and
`-1`, `-2`, ... for repeated headings). http(s) and mailto links, links inside fenced code
blocks and inside code spans are not checked. README.md must also stay short.

    links.py            prints "INFO N links checked in M files", or every broken link
                        as file:line and exits 1
"""

import os
import re
import sys
import urllib.parse

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
README_MAX_LINES = 320

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target) or ![alt](target), with an optional title; text may hold code spans.
INLINE = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
DEFINITION = re.compile(r"^ {0,3}\[([^\]]+)\]:\s*(<[^>]*>|\S+)")
HTML_ID = re.compile(r"<a\s[^>]*\b(?:name|id)=\"([^\"]+)\"", re.I)
IGNORED = ("http://", "https://", "mailto:")
LINE_ANCHOR = re.compile(r"^L\d+(?:-L\d+)?$")


def rel(path):
    return os.path.relpath(path, ROOT)


def prose_lines(text):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):].strip():
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        yield n, line


def heading_text(raw):
    """The text GitHub renders for a heading: link targets, code ticks and tags dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    text = re.sub(r"<[^>]+>", "", text)
    return text


def slug(text):
    return re.sub(r"[^\w\- ]", "", heading_text(text).strip().lower()).replace(" ", "-")


_anchors = {}


def anchors(path):
    """Every anchor of a Markdown file, with GitHub's -1, -2 suffixes for repeated headings."""
    if path in _anchors:
        return _anchors[path]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    found, seen = set(), {}
    previous = ""
    for _, line in prose_lines(text):
        heading = None
        m = ATX.match(line)
        if m:
            heading = m.group(2) or ""
        elif SETEXT.match(line) and previous.strip() and not previous.lstrip().startswith(("|", "#", "-", "*", ">")):
            heading = previous.strip()
        if heading is not None:
            base = slug(heading)
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(HTML_ID.findall(line))
        previous = line if not m else ""
    _anchors[path] = found
    return found


def links(path):
    """(line number, text, target) of every link of a Markdown file outside code."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for n, line in prose_lines(text):
        m = DEFINITION.match(line)
        if m:
            yield n, f"[{m.group(1)}]", m.group(2)
            continue
        # Code spans cannot hold links; blank them, but keep link texts made of code spans.
        masked = CODE_SPAN.sub(lambda c: "\0" * len(c.group(0)), line)
        for m in INLINE.finditer(masked):
            original = line[m.start():m.end()]
            target = line[m.start(2):m.end(2)]
            yield n, original, target


def check(path, target):
    """None if the link resolves, else why not."""
    target = target.strip("<>")
    if target.lower().startswith(IGNORED):
        return None
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
        return f"unsupported scheme in {target!r}"
    file_part, _, anchor = target.partition("#")
    file_part = urllib.parse.unquote(file_part)
    if file_part:
        if file_part.startswith("/"):
            dest = os.path.realpath(os.path.join(ROOT, file_part.lstrip("/")))
        else:
            dest = os.path.realpath(os.path.join(os.path.dirname(path), file_part))
        if dest != ROOT and not dest.startswith(ROOT + os.sep):
            return f"{file_part} is outside the repository"
        if not os.path.exists(dest):
            return f"{rel(dest)} does not exist"
    else:
        dest = path
    if "#" not in target:
        return None
    anchor = urllib.parse.unquote(anchor)
    if not anchor:
        return "empty anchor"
    if dest.endswith(".md") and os.path.isfile(dest):
        if anchor not in anchors(dest):
            return f"{rel(dest)} has no heading with anchor #{anchor}"
        return None
    if os.path.isfile(dest) and LINE_ANCHOR.match(anchor):
        return None
    return f"#{anchor} cannot be checked in {rel(dest)}"


def main():
    files = [os.path.join(ROOT, "README.md")]
    docs = os.path.join(ROOT, "docs")
    for folder, _, names in sorted(os.walk(docs)):
        files += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".md")]
    errors, checked = [], 0
    for path in files:
        if not os.path.isfile(path):
            errors.append(f"{rel(path)}: missing")
            continue
        for n, text, target in links(path):
            checked += 1
            why = check(path, target)
            if why:
                errors.append(f"{rel(path)}:{n}: {text}: {why}")
    readme = files[0]
    if os.path.isfile(readme):
        with open(readme, encoding="utf-8") as f:
            count = len(f.read().splitlines())
        if count > README_MAX_LINES:
            errors.append(f"README.md: {count} lines; keep it at most {README_MAX_LINES} and move detail to docs/")
    if errors:
        print(f"ERROR {len(errors)} problems in {len(files)} files:")
        for e in errors:
            print(f"  {e}")
        sys.exit(1)
    print(f"INFO {checked} links checked in {len(files)} files")


if __name__ == "__main__":
    main()
