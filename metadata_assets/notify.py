"""Change notifications: deliver the outbox (history.py queues one entry per notifiable schema version) to webhooks.

No Dagster, no SQL. Guarantees, and how:
- Once per change and webhook: an entry is created once per database version (create-only, keyed by database and
  version number, so re-runs and retries of the extraction never queue it twice); each webhook it was delivered to
  is written into the entry (atomically) right after the receiver's 2xx, and the entry is deleted once every
  webhook that wants it has it. Only one delivery pass runs per source at a time (a store lock). The one window
  left is a crash between a receiver's 2xx and that write: the next pass sends again, with the same
  `Idempotency-Key` header (and payload `id`), so a receiver can tell.
- Nothing lost: a failed delivery (receiver down, slow, 5xx, URL variable unset) leaves the entry in the outbox
  with its error, retried by the next pass; an entry is dropped only after `notifications.max_age_days`, and the
  pass says so.
- Never blocking: each pass has a deadline, each request a timeout, each webhook a bounded number of tries per pass
  (a webhook that failed is not tried again for other entries in the same pass). Extraction only queues entries
  (store writes); passes run at the end of an extraction run (short deadline, failures only logged) and in the
  notification sensor (defs/notifications.py), whose tick message says what failed.
- Hostile names: in Slack payloads `&`, `<`, `>` become entities (so no `<!channel>` or link can be forged) and
  every name is a code span whose backticks and line breaks are replaced (mrkdwn has no escapes: inside a code span
  `*`, `_`, `~` are plain); every payload's JSON has `<`, `>`, `&`, U+2028/9 as \\u escapes.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional

from metadata_assets.change_config import Webhook
from metadata_assets.history import outbox_prefix
from metadata_assets.risk import BREAKING, WARNING, at_least
from metadata_assets.storage.store import Store

MAX_LISTED = 20  # changes listed in a Slack message (the JSON payload carries all the entry holds)


def targets_for(cfg, source) -> list[Webhook]:
    """The webhooks of a source: its own, then its owners' (the project's notifications.owners), each once."""
    out: dict[str, Webhook] = {w.id: w for w in source.notifications.webhooks}
    if source.notifications.notify_owners:
        owners = getattr(getattr(cfg, "notifications", None), "owners", {}) or {}
        for owner in source.owners:
            for w in owners.get(owner, []):
                out.setdefault(w.id, w)
    return list(out.values())


# --- payloads ---------------------------------------------------------------------------------------------------


def slack_escape(s: str) -> str:
    """Text for Slack mrkdwn outside code spans: the three characters Slack wants as entities."""
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_code(s: str) -> str:
    """A name as a Slack code span: backticks (which would end it) as ˋ, line breaks and other controls as spaces."""
    text = "".join(" " if (ord(c) < 32 or c in "\u2028\u2029\x7f") else c for c in str(s)).replace("`", "ˋ")
    return f"`{slack_escape(text) or ' '}`"


_ICON = {BREAKING: ":red_circle:", WARNING: ":large_orange_circle:"}


def _headline(entry: dict) -> tuple[str, str]:
    counts = entry.get("risk_counts") or {}
    parts = ", ".join(f"{counts[c]} {c}" for c in (BREAKING, WARNING, "safe") if counts.get(c))
    return (
        f"schema version {entry['seq']}: {entry['total_changes']} change(s) ({parts}), worst {entry['risk']}",
        parts,
    )


def slack_payload(entry: dict) -> dict:
    headline, _ = _headline(entry)
    where = f"{slack_code(entry['source'])}/{slack_code(entry['database'])}"
    lines = []
    for c in entry["changes"][:MAX_LISTED]:
        detail = f" {slack_code(c['detail'])}" if c.get("detail") else ""
        lines.append(f"• *{c['risk']}* {slack_escape(c['change'])} {slack_code(c['object'])}{detail}")
    more = entry["total_changes"] - min(len(entry["changes"]), MAX_LISTED)
    if more > 0:
        lines.append(f"…and {more} more (see `metadata-assets history`)")
    blocks = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"{_ICON.get(entry['risk'], '')} {where}: {headline}".strip()},
        }
    ]
    chunk: list[str] = []
    for line in lines:  # a section's text holds at most 3,000 characters
        if chunk and sum(len(x) + 1 for x in chunk) + len(line) > 2900:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}})
            chunk = []
        chunk.append(line[:2900])
    if chunk:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": slack_escape(f"recorded {entry['recorded_at']} · id {entry['id']}")}
            ],
        }
    )
    return {"text": f"{where}: {headline}", "blocks": blocks[:50]}


def json_payload(entry: dict) -> dict:
    headline, _ = _headline(entry)
    return {
        "id": entry["id"],
        "source": entry["source"],
        "database": entry["database"],
        "version": entry["seq"],
        "recorded_at": entry["recorded_at"],
        "risk": entry["risk"],
        "risk_counts": entry.get("risk_counts", {}),
        "total_changes": entry["total_changes"],
        "changes": entry["changes"],
        "text": f"{entry['source']}/{entry['database']}: {headline}",
    }


def encode(payload: dict) -> bytes:
    """JSON with `<`, `>`, `&` and U+2028/9 as \\u escapes (the same values; safe to embed in HTML or a script)."""
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text.encode("utf-8")


def payload_for(webhook: Webhook, entry: dict) -> bytes:
    return encode(slack_payload(entry) if webhook.format == "slack" else json_payload(entry))


# --- delivery ---------------------------------------------------------------------------------------------------


def post(url: str, body: bytes, headers: dict, timeout_s: float) -> None:
    """One POST; raises on anything but a 2xx (urllib.error.HTTPError carries the status)."""
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 (http/https checked by the caller)
        resp.read(65536)


def _describe(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code}"
    if isinstance(e, urllib.error.URLError):
        return f"unreachable ({e.reason})"
    if isinstance(e, TimeoutError) or "timed out" in str(e):
        return "timed out"
    return f"{type(e).__name__}: {e}"


@dataclass
class DeliveryReport:
    source: str
    sent: int = 0  # deliveries (entry × webhook) that succeeded in this pass
    done: int = 0  # entries finished (delivered everywhere they were due) and removed
    pending: int = 0  # entries left in the outbox for the next pass
    dropped: int = 0  # entries older than max_age_days, removed unsent
    unwanted: int = 0  # entries below every webhook's min_risk (or no webhook at all), removed
    failures: dict[str, str] = field(default_factory=dict)  # webhook label -> what went wrong last
    busy: bool = False  # another pass held the outbox

    @property
    def ok(self) -> bool:
        return not self.failures and not self.busy

    def summary(self) -> str:
        if self.busy:
            return f"{self.source}: another delivery of the outbox is running; next pass retries"
        parts = [f"{self.sent} notification(s) sent"]
        if self.pending:
            parts.append(f"{self.pending} change(s) pending (retried next pass)")
        if self.dropped:
            parts.append(f"{self.dropped} dropped unsent after max_age_days")
        if self.unwanted:
            parts.append(f"{self.unwanted} below every webhook's min_risk")
        text = f"{self.source}: " + ", ".join(parts)
        if self.failures:
            text += "; FAILED: " + "; ".join(f"{k}: {v}" for k, v in sorted(self.failures.items()))
        return text


def deliver(
    store: Store,
    source,
    targets: list[Webhook],
    deadline_s: float = 20,
    clock: Callable[[], float] = time.time,
    send: Callable = post,
) -> DeliveryReport:
    """One pass over the source's outbox (see the module's docstring). Never raises for a receiver's fault."""
    from metadata_assets.storage.locks import LockBusy

    n = source.notifications
    report = DeliveryReport(source=source.name)
    stop = time.monotonic() + deadline_s
    if not store.list(outbox_prefix(source.name)):
        return report  # the usual case: one listing, no lock taken
    try:
        lock = store.lock(f"{source.name}/outbox.lock", wait_s=0, lease_s=deadline_s + 60)
        with lock:
            _pass(store, source, n, targets, stop, clock, send, report)
    except LockBusy:
        report.busy = True
    return report


def _pass(store, source, n, targets, stop, clock, send, report: DeliveryReport) -> None:
    broken: set[str] = set()  # webhooks that failed in this pass: not tried again until the next one
    keys = store.list(outbox_prefix(source.name))
    for i, key in enumerate(keys):
        if time.monotonic() >= stop:
            report.pending += len(keys) - i
            report.failures.setdefault("deadline", "delivery pass reached its deadline")
            return
        raw = store.read_bytes(key)
        if raw is None:
            continue  # delivered by someone else meanwhile
        entry = json.loads(raw)
        wanted = [t for t in targets if at_least(entry["risk"], t.min_risk)]
        todo = [t for t in wanted if t.id not in entry["delivered"]]
        if not wanted:
            store.delete(key)
            report.unwanted += 1
            continue
        if clock() * 1000 - entry["queued_at_ms"] > n.max_age_days * 86400_000:
            store.delete(key)
            report.dropped += 1
            continue
        for t in todo:
            if t.id in broken:
                continue
            error = _send_one(t, entry, n, stop, send)
            if error is None:
                entry["delivered"].append(t.id)
                entry["failures"].pop(t.id, None)
                report.sent += 1
            else:
                broken.add(t.id)
                failure = entry["failures"].get(t.id) or {"passes": 0}
                entry["failures"][t.id] = {
                    "error": error,
                    "passes": failure["passes"] + 1,
                    "last_at": datetime.fromtimestamp(clock(), timezone.utc).isoformat(),
                }
                report.failures[t.label] = error
            store.write_bytes(key, json.dumps(entry, sort_keys=True, ensure_ascii=False).encode())
        if all(t.id in entry["delivered"] for t in wanted):
            store.delete(key)
            report.done += 1
        else:
            report.pending += 1


def _send_one(t: Webhook, entry: dict, n, stop: float, send: Callable) -> Optional[str]:
    """Deliver one entry to one webhook: None when it took it, else what went wrong (after n.attempts tries)."""
    url = os.environ.get(t.url_env)
    if not url:
        return f"environment variable {t.url_env} (url_env) is not set"
    if not url.startswith(("http://", "https://")):
        return f"environment variable {t.url_env} does not hold an http(s) URL"
    body = payload_for(t, entry)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "metadata-assets",
        "Idempotency-Key": f"{entry['id']}/{t.id}",
    }
    error = "not tried: delivery deadline reached"
    for attempt in range(n.attempts):
        left = stop - time.monotonic()
        if left <= 0.05:
            break
        try:
            send(url, body, headers, min(n.timeout_s, left))
            return None
        except Exception as e:  # a receiver's fault, whatever it is, is this webhook's failure, never the caller's
            error = _describe(e)
            if isinstance(e, urllib.error.HTTPError) and 400 <= e.code < 500 and e.code not in (408, 429):
                break  # the receiver refuses this request: trying again now would not help
        if attempt + 1 < n.attempts:
            time.sleep(max(0.0, min(0.2 * 2**attempt, stop - time.monotonic() - 0.05)))
    return error
