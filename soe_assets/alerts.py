"""The alert sink: failed checks and failed runs, delivered where teams look.

Every alert is appended as one JSON line to the alert log (always), and
POSTed as JSON to a webhook when ``SOE_ALERT_WEBHOOK_URL`` is set. The payload
carries a Slack-compatible ``text`` field next to the structured fields, so
the same URL style works for a Slack incoming webhook, Teams/Mattermost
bridges or any HTTP endpoint that takes JSON.

The webhook URL (which usually embeds a secret token) is read from the
environment at delivery time only: it is never stored in a resource, never
written to the alert log, never logged; delivery errors are reported without it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from soe_assets.terminal import say

WEBHOOK_ENV = "SOE_ALERT_WEBHOOK_URL"
ALERT_LOG_ENV = "SOE_ALERT_LOG"
WEBHOOK_TIMEOUT_SECONDS = 5.0
# What one step's alerts may spend on the webhook in all; the alert log has every alert regardless.
WEBHOOK_BUDGET_SECONDS = 15.0
ALERT_LOG_NAME = "alerts.jsonl"


@dataclass(frozen=True)
class Alert:
    """One thing a team must look at: a failed check or a failed run."""

    kind: str  # "check_failed" | "run_failed"
    severity: str  # "ERROR" | "WARN"
    subject: str  # the asset or job concerned, e.g. "raw/sales_orders"
    name: str  # the check name or the job name
    message: str
    run_id: str = ""
    as_of: str = ""
    details: dict = field(default_factory=dict)
    # the machine's clock with its offset: a team reading alerts of several machines (or across a clock change)
    # can order them
    raised_at: str = field(default_factory=lambda: datetime.now().astimezone().isoformat(timespec="seconds"))

    def headline(self) -> str:
        scope = f" (as_of {self.as_of})" if self.as_of else ""
        what = "check failed" if self.kind == "check_failed" else "run failed"
        return f"[soe {self.severity}] {what}: {self.subject} / {self.name}{scope}: {self.message}"


@dataclass(frozen=True)
class Delivery:
    logged_to: Path | None  # None: the log could not be written (the webhook may still have the alert)
    webhook_status: str  # "not configured" | "delivered" | "failed: <reason without the URL>"


def default_alert_log(warehouse_path: str | Path) -> Path:
    """``$SOE_ALERT_LOG`` when set, else ``alerts.jsonl`` beside the warehouse file."""
    configured = os.environ.get(ALERT_LOG_ENV, "").strip()
    return Path(configured) if configured else Path(warehouse_path).parent / ALERT_LOG_NAME


def webhook_payload(alert: Alert) -> dict:
    """Generic JSON with a Slack-compatible ``text`` (Slack ignores the other keys)."""
    return {"text": alert.headline(), **asdict(alert)}


def _without_credentials(parts: urllib.parse.SplitResult) -> str:
    """The URL without the ``user:pass@`` of its host part."""
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _redact(text: str, url: str) -> str:
    """``text`` without the URL or any part of it that may hold the secret (path, query, password)."""
    parts = urllib.parse.urlsplit(url)
    secrets = [url, _without_credentials(parts),
               parts.path if len(parts.path) > 1 else "", parts.query, parts.password or ""]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "<webhook url>")
    return text


def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be POSTed to (said without the URL, which holds a secret), or None."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. an unbalanced bracket, which Python reads as the start of an IPv6 address
        return "it is not a well-formed URL (an unbalanced '[' or ']'?)"
    if parts.scheme.lower() not in ("http", "https"):
        return "it must start with http:// or https://"
    if not host:
        return "it names no host"
    return None


def _webhook_request(url: str, payload: dict) -> urllib.request.Request:
    """The POST of ``payload`` as JSON; credentials written into the URL (``https://user:pass@host/...``),
    which urllib would take for part of the host, go in a Basic authorization header."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Content-Type": "application/json", "User-Agent": "soe-alerts"}
    if parts.username is not None:
        credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        url = _without_credentials(parts)
    return urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers, method="POST")


def post_webhook(url: str, payload: dict, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> str:
    """POST ``payload`` as JSON; returns a status line that never contains the URL (nor its parts)."""
    problem = webhook_url_problem(url)
    if problem:
        return f"failed: {WEBHOOK_ENV} is not a usable URL: {problem}"
    try:
        request = _webhook_request(url, payload)
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (URL from the operator)
            return "delivered" if 200 <= response.status < 300 else f"failed: HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"failed: HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        return _redact(f"failed: {type(error).__name__}: {reason}", url)


def _post_within(url: str, payload: dict, seconds: float) -> str:
    """``post_webhook``, given up after ``seconds`` however the server answers: urllib's timeout bounds each read,
    not the request, so a server trickling bytes could hold it for minutes. A post given up goes on in the
    background and may still arrive."""
    if seconds <= 0:
        return f"failed: not sent: the {WEBHOOK_BUDGET_SECONDS:.0f} s this step gives the webhook were used up"
    status: list[str] = []
    # urllib's own timeout a second later: the join decides, however the machine schedules the two
    post = threading.Thread(target=lambda: status.append(post_webhook(url, payload, timeout=seconds + 1)), daemon=True)
    post.start()
    post.join(seconds)
    return status[0] if status else f"failed: no answer within {seconds:.0f} s"


def deliver(alerts: Iterable[Alert], alert_log: Path, warn: Callable[[str], None] | None = None,
            budget_seconds: float = WEBHOOK_BUDGET_SECONDS) -> list[Delivery]:
    """Append every alert to the JSON-lines log, then POST it to the webhook if one is configured; the posts
    of one call share ``budget_seconds``, so a slow webhook cannot stall the run. A log that cannot be
    written is warned about, never raised: the alert still goes to the webhook, and the check or the run
    that raised it keeps its own verdict."""
    url = os.environ.get(WEBHOOK_ENV, "").strip()
    deliveries = []
    deadline = time.monotonic() + budget_seconds
    for alert in alerts:
        remaining = min(WEBHOOK_TIMEOUT_SECONDS, deadline - time.monotonic())
        status = _post_within(url, webhook_payload(alert), remaining) if url else "not configured"
        record = {**asdict(alert), "webhook": status}
        try:
            alert_log.parent.mkdir(parents=True, exist_ok=True)
            with alert_log.open("a", encoding="utf-8") as log:
                log.write(json.dumps(record, default=str) + "\n")
            logged_to = alert_log
        except OSError as error:
            logged_to = None
            (warn or _stderr)(f"alert log {alert_log} cannot be written ({error.strerror or error}): "
                              f"{alert.headline()}")
        if warn and status.startswith("failed"):
            warn(f"alert webhook delivery {status}")
        deliveries.append(Delivery(logged_to=logged_to, webhook_status=status))
    return deliveries


def _stderr(message: str) -> None:
    say(message, file=sys.stderr)


def read_alert_log(alert_log: Path) -> list[dict]:
    if not alert_log.exists():
        return []
    return [json.loads(line) for line in alert_log.read_text(encoding="utf-8").splitlines() if line.strip()]
