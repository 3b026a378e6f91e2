#!/usr/bin/env python3
"""The training corpus of rotor's small model: the King James Version of the Bible (public domain; the
translation dates from 1611), from Debian's bible-kjv package (`bible` prints it).

Writes OUT/train.txt and OUT/val.txt: one chapter heading line ("Genesis 1") then one verse per line,
verse numbers dropped so the text reads as prose. Every 20th chapter (index 7 mod 20, about 5%) is
held out as validation text.

Usage: prepare_corpus.py OUT_DIR      (needs: apt-get install bible-kjv)
"""
import os
import re
import subprocess
import sys


def chapters(text):
    heading, verses, cur = None, [], None
    for line in text.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^  (\d+) (.*)$", line)
        if m:
            if cur is not None:
                verses.append(cur)
            cur = m.group(2).strip()
        elif not line.startswith(" ") and re.match(r"^[1-3]?\s?[A-Z][A-Za-z ]+ \d+$", line.strip()):
            if cur is not None:
                verses.append(cur)
                cur = None
            if heading is not None:
                yield heading, verses
            heading, verses = line.strip(), []
        else:
            cur = (cur + " " + line.strip()) if cur is not None else line.strip()
    if cur is not None:
        verses.append(cur)
    if heading is not None:
        yield heading, verses


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    text = subprocess.run(["bible", "Genesis1:1-Revelation22:21"], check=True, capture_output=True,
                          text=True).stdout
    train, val = [], []
    n = 0
    for i, (heading, verses) in enumerate(chapters(text)):
        block = heading + "\n" + "\n".join(verses) + "\n\n"
        (val if i % 20 == 7 else train).append(block)
        n += 1
    open(os.path.join(out, "train.txt"), "w").write("".join(train))
    open(os.path.join(out, "val.txt"), "w").write("".join(val))
    print(f"{n} chapters: train {sum(map(len, train))} chars, val {sum(map(len, val))} chars")


if __name__ == "__main__":
    main()
