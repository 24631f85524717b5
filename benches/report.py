#!/usr/bin/env python3
"""Turns the criterion results of `cargo bench --bench esp` (target/criterion) into the
markdown table of benches/README.md: per transform, provider and size, ns per packet for
encap, decap and the raw cipher on the same packets, and the non-crypto cost (the
difference). Bursts are 32 packets."""

import json
import pathlib
import sys

BURST = 32
root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def ns(group, fn, size):
    p = root / group / fn / size / "new" / "estimates.json"
    if not p.exists():
        return None
    return json.loads(p.read_text())["median"]["point_estimate"] / BURST


rows = []
for g in sorted(root.glob("esp_*_*")):
    _, transform, provider = g.name.split("_", 2)
    for size in ("64", "512", "1420", "imix"):
        e, rs, d, ro = (ns(g.name, f, size) for f in ("encap", "raw_seal", "decap", "raw_open"))
        if None in (e, rs, d, ro):
            continue
        rows.append((transform, provider, size, e, rs, e - rs, d, ro, d - ro))

print("| transform | provider | inner size | encap ns/pkt | raw seal | non-crypto | decap ns/pkt | raw open | non-crypto |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print("| %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |" % r)
