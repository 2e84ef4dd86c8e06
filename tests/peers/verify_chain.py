"""Checks auditrelay hash chains in an NDJSON file of `json`-format events (docs/integrity.md).
Independent of auditrelay's code: only the documented definition and RFC 8785 (rfc8785)."""
import hashlib, json, sys
import rfc8785

def as_number(text):  # RFC 8785 treats every number as an IEEE double, as ECMAScript does
    n = int(text)
    return n if abs(n) <= 2**53 - 1 else float(n)

state = {}  # tenant -> (last offset, chain after it, first offset)
for line in open(sys.argv[1], encoding="utf-8"):
    if not line.strip():
        continue
    event = json.loads(line, parse_int=as_number)
    tenant, offset, stated = event["tenant_id"], event["offset"], bytes.fromhex(event.pop("chain"))
    last, chain, first = state.get(tenant, (0, bytes(32), offset))
    if last and offset != last + 1:
        sys.exit(f"tenant {tenant}: offset {offset} follows {last}: gap or reordering at offset {last + 1}")
    if last or offset == 1:  # a copy that starts later is anchored on its first chain value
        chain = hashlib.sha256(chain + rfc8785.dumps(event)).digest()
        if chain != stated:
            sys.exit(f"tenant {tenant}: altered event at offset {offset}")
    state[tenant] = (offset, stated, first)
for tenant, (last, _, first) in sorted(state.items()):
    print(f"tenant {tenant}: intact: {last - first + 1} events, offsets {first}..{last}")
