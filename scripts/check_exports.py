#!/usr/bin/env python3
"""Check that the header declares exactly the sgdnoise_ functions the shared library exports.

Usage: check_exports.py HEADER LIBRARY
"""
import re
import subprocess
import sys

header, library = sys.argv[1:3]
with open(header, encoding="ascii") as f:
    declared = set(re.findall(r"\b(sgdnoise_\w+)\(", f.read()))
symbols = subprocess.run(["nm", "-D", "--defined-only", library], check=True,
                         capture_output=True, text=True).stdout
exported = {line.split()[-1] for line in symbols.splitlines()
            if line.split()[-1].startswith("sgdnoise_") and " T " in line}
missing, extra = declared - exported, exported - declared
if missing or extra:
    sys.exit(f"header/library mismatch: declared but not exported {sorted(missing)}, "
             f"exported but not declared {sorted(extra)}")
print(f"header: {len(declared)} functions declared, all exported by {library}")
