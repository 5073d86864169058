"""The must-show: 10,000 notices to a real SMTP server on localhost, the sender killed (SIGKILL)
halfway, reconciled from the server's received Message-IDs, restarted: every customer has exactly
one message, in the right language, and the outbox says every notice was sent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from notify_fixtures import INCIDENT_ID, SUBJECT_MARKER, many_customers, smtp_server, write_incident

from crmguard.cli import EXIT_OK, main
from crmguard.response.outbox import Outbox

pytestmark = pytest.mark.integration

CUSTOMERS = 10_000


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.01)


def test_sender_killed_halfway_resumes_and_nobody_gets_two_messages(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rows, expected = many_customers(CUSTOMERS)
    write_incident(home, rows)
    assert len(set(expected.values())) >= 6
    with smtp_server(tmp_path) as (server, port):
        command = [sys.executable, "-c", "import sys; from crmguard.cli import main; sys.exit(main())",
                   "notify", "send", INCIDENT_ID, "--home", str(home), "--smtp", f"127.0.0.1:{port}",
                   "--from", "Maison A <notices@maison-exemple.com>", "--rate", "0"]
        log = (tmp_path / "sender.log").open("w")
        sender = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for(lambda: len(server.received.raw) >= CUSTOMERS // 2 or sender.poll() is not None, 600,
                      "half of the notices to arrive")
            assert sender.poll() is None, "the sender finished before it could be killed"
            os.kill(sender.pid, signal.SIGKILL)
            assert sender.wait(60) == -signal.SIGKILL
        finally:
            if sender.poll() is None:
                sender.kill()
            log.close()
        # Once its session is closed, nothing more can arrive from the killed sender: the received
        # list is the server's complete record.
        _wait_for(lambda: server.received.sessions_open == 0, 60, "the server to close the killed session")
        first_half = len(server.received.raw)
        assert CUSTOMERS // 2 <= first_half < CUSTOMERS

        with Outbox(home / "state.db") as outbox:
            before = Counter(r["status"] for r in outbox.rows(INCIDENT_ID))
        assert before["sending"] <= 100 and before["sent"] <= first_half  # at most one claimed batch in flight

        assert main(["notify", "reconcile", INCIDENT_ID, "--home", str(home),
                     "--delivered", str(server.ids_file), "--complete"]) == EXIT_OK
        # In another process, so the server (a thread of this one) does not compete for the GIL.
        assert subprocess.run(command, stdout=subprocess.DEVNULL, timeout=600).returncode == EXIT_OK
        received = server.received

    per_customer = Counter(r.split("@")[0].upper() for r in received.recipients)
    assert len(received.raw) == CUSTOMERS
    assert per_customer == Counter({cid: 1 for cid in expected})
    assert len(set(received.message_ids)) == CUSTOMERS
    for i, rcpt in enumerate(received.recipients):
        headers = received.headers(i)
        want = expected[rcpt.split("@")[0].upper()]
        assert headers["Content-Language"] == want, rcpt
        assert SUBJECT_MARKER[want] in headers["Subject"], rcpt
        assert headers["Message-ID"] == received.message_ids[i]
    for i in range(0, CUSTOMERS, 997):  # and the body, in full, for a sample
        body = received.parsed(i).get_body(("plain",)).get_content()
        assert INCIDENT_ID in body and "dpo@maison-exemple.com" in body
    with Outbox(home / "state.db") as outbox:
        rows_after = outbox.rows(INCIDENT_ID)
    assert Counter(r["status"] for r in rows_after) == {"sent": CUSTOMERS}
    assert {r["message_id"] for r in rows_after} == set(received.message_ids)
