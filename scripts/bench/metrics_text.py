"""Reading the daemon's /metrics text (Prometheus exposition), shared by bench.py and drain-observe.sh."""
import re

FINAL_OUTCOMES = ("applied", "incomplete", "duplicate", "unchanged", "skipped", "rejected")


def settled(text, source="app-events"):
    """Events of a source with a final outcome (applied, incomplete, duplicate, unchanged, skipped, rejected)."""
    total = 0
    for match in re.finditer(r'^crm_ingest_events_total\{([^}]*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels.get("source") == source and labels.get("outcome") in FINAL_OUTCOMES:
            total += float(match.group(2))
    return int(total)
