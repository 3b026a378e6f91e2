#!/usr/bin/env python3
"""Generate src/formats/iq_tables.cpp from ggml's ggml-common.h.

Usage: tools/gen_iq_tables.py PATH/TO/ggml-common.h [--origin TEXT] [-o OUT.cpp]
       OUT defaults to src/formats/iq_tables.cpp of this repository; TEXT (e.g. the repository and
       commit the header came from) is recorded in the generated file's header.

ggml-common.h (ggml-org/ggml src/ggml-common.h, or ggml/src/ggml-common.h in llama.cpp; MIT
license) holds the lookup tables of the IQ formats as `GGML_TABLE_BEGIN(type, name, size) ...
GGML_TABLE_END()` blocks. This script copies only the numbers of the tables rotor needs, checks
them (size, allowed code values, sort order, the sign table's parity rule) and writes them as
rotor's C++ definitions declared in src/formats/iq_tables.h. Python 3 standard library only.
"""
import argparse
import hashlib
import os
import re
import sys

# ggml table name -> (rotor name, C type, expected size)
TABLES = [
    ("kmask_iq2xs", "kKmaskIq2xs", "uint8_t", 8),
    ("ksigns_iq2xs", "kKsignsIq2xs", "uint8_t", 128),
    ("iq2xxs_grid", "kIq2xxsGrid", "uint64_t", 256),
    ("iq2xs_grid", "kIq2xsGrid", "uint64_t", 512),
    ("iq2s_grid", "kIq2sGrid", "uint64_t", 1024),
    ("iq3xxs_grid", "kIq3xxsGrid", "uint32_t", 256),
    ("iq3s_grid", "kIq3sGrid", "uint32_t", 512),
    ("iq1s_grid", "kIq1sGrid", "uint64_t", 2048),
    ("kvalues_iq4nl", "kIq4nlValues", "int8_t", 16),
    ("kvalues_fp4", "kMxfp4Values", "int8_t", 16),
]

# Byte values each grid may contain (every entry is 4 or 8 packed bytes, little-endian).
GRID_BYTES = {
    "iq2xxs_grid": (8, {0x08, 0x19, 0x2b}),
    "iq2xs_grid": (8, {0x08, 0x19, 0x2b}),
    "iq2s_grid": (8, {0x08, 0x19, 0x2b}),
    "iq3xxs_grid": (4, {4, 12, 20, 28, 36, 44, 52, 62}),
    "iq3s_grid": (4, {1, 3, 5, 7, 9, 11, 13, 15}),
    "iq1s_grid": (8, {0xff, 0x00, 0x01}),  # int8 -1, 0, +1
}


def fail(msg):
    sys.exit("gen_iq_tables: " + msg)


def parse_tables(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    defines = dict(re.findall(r"#define\s+(\w+)\s+(\d+)\b", text))
    tables = {}
    pattern = r"^\s*GGML_TABLE_BEGIN\(\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*\)(.*?)GGML_TABLE_END\(\)"
    for ctype, name, size, body in re.findall(pattern, text, flags=re.S | re.M):
        size = int(defines.get(size, size), 0)
        values = [int(v, 0) for v in re.findall(r"-?(?:0x[0-9a-fA-F]+|\d+)", body)]
        if name in tables:
            fail("table %s defined twice" % name)
        tables[name] = (ctype, size, values)
    return tables


def check(tables):
    for gname, _, ctype, size in TABLES:
        if gname not in tables:
            fail("table %s not found" % gname)
        gtype, gsize, values = tables[gname]
        if gtype != ctype or gsize != size or len(values) != size:
            fail("table %s: expected %s[%d], found %s[%d] with %d values" % (gname, ctype, size, gtype, gsize,
                                                                             len(values)))
    if tables["kmask_iq2xs"][2] != [1 << j for j in range(8)]:
        fail("kmask_iq2xs is not 1 << j")
    # ksigns_iq2xs[i]: 7 stored sign bits plus an 8th that makes the number of minus signs even.
    for i, v in enumerate(tables["ksigns_iq2xs"][2]):
        if v != i | ((bin(i).count("1") & 1) << 7):
            fail("ksigns_iq2xs[%d] = %d breaks the parity rule" % (i, v))
    for gname, (nbytes, allowed) in GRID_BYTES.items():
        prev = None
        for i, v in enumerate(tables[gname][2]):
            if not 0 <= v < 1 << (8 * nbytes):
                fail("%s[%d] out of range" % (gname, i))
            b = [(v >> (8 * k)) & 0xff for k in range(nbytes)]
            if any(x not in allowed for x in b):
                fail("%s[%d] = %#x has a byte outside %s" % (gname, i, v, sorted(allowed)))
            # ggml lists the grid points in increasing order, last coordinate most significant
            # (iq1s bytes compared as signed): a transcription slip would usually break it.
            key = [x - 256 if x > 127 else x for x in reversed(b)]
            if prev is not None and key <= prev:
                fail("%s is not strictly increasing at %d" % (gname, i))
            prev = key


def fmt_values(ctype, values):
    if ctype == "uint64_t":
        items, per_line = ["0x%016x" % v for v in values], 4
    elif ctype == "uint32_t":
        items, per_line = ["0x%08x" % v for v in values], 8
    else:
        items, per_line = ["%d" % v for v in values], 16
    lines = []
    for i in range(0, len(items), per_line):
        lines.append("    " + ", ".join(items[i:i + per_line]) + ",")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description="Generate src/formats/iq_tables.cpp from ggml-common.h")
    ap.add_argument("header", help="path to ggml-common.h")
    ap.add_argument("--origin", default="", help="where the header came from (recorded in the output)")
    ap.add_argument("-o", "--out", help="output .cpp (default: src/formats/iq_tables.cpp)")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = args.out or os.path.join(root, "src", "formats", "iq_tables.cpp")
    with open(args.header, "rb") as f:
        raw = f.read()
    tables = parse_tables(raw.decode("utf-8"))
    check(tables)

    parts = [
        "// GENERATED by tools/gen_iq_tables.py -- do not edit; rerun the script instead.",
        "// Source: ggml's ggml-common.h (MIT license)%s," % (" from " + args.origin if args.origin else ""),
        "// sha256 %s." % hashlib.sha256(raw).hexdigest(),
        "// Command: python3 tools/gen_iq_tables.py ggml-common.h%s" %
        (' --origin "%s"' % args.origin if args.origin else ""),
        "// Only the numbers of ggml's tables are reproduced; see iq_tables.h for what they mean.",
        '#include "formats/iq_tables.h"',
        "",
        "namespace rotor {",
        "",
    ]
    for gname, rname, ctype, size in TABLES:
        parts.append("// ggml: %s" % gname)
        parts.append("const %s %s[%d] = {" % (ctype, rname, size))
        parts.append(fmt_values(ctype, tables[gname][2]))
        parts.append("};")
        parts.append("")
    parts.append("}  // namespace rotor")
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")
    print("wrote %s (%d tables)" % (out, len(TABLES)))


if __name__ == "__main__":
    main()
