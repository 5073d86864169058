"""The must-show: 10,000 notices to a real SMTP server on localhost, the sender killed (SIGKILL)
halfway, reconciled from the server's received Message-IDs, restarted: every customer has exactly
one message, in the right language, and the outbox says every notice was sent.

The kill lands on the worst moment on purpose: the server has accepted and logged message 5,000
but holds back its 250, so the sender dies not knowing whether that message went out."""

from __future__ import annotations

import json
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


def test_sender_killed_halfway_resumes_and_nobody_gets_two_messages(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    rows, expected = many_customers(CUSTOMERS)
    write_incident(home, rows)
    assert len(set(expected.values())) >= 6
    half = CUSTOMERS // 2
    with smtp_server(tmp_path, hold_at=half) as (server, port):
        command = [sys.executable, "-c", "import sys; from crmguard.cli import main; sys.exit(main())",
                   "notify", "send", INCIDENT_ID, "--home", str(home), "--smtp", f"127.0.0.1:{port}",
                   "--from", "Maison A <notices@maison-exemple.com>", "--rate", "0"]
        log = (tmp_path / "sender.log").open("w")
        sender = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for(lambda: len(server.received.raw) >= half or sender.poll() is not None, 600,
                      "half of the notices to arrive")
            assert sender.poll() is None, "the sender finished before it could be killed"
            os.kill(sender.pid, signal.SIGKILL)
            assert sender.wait(60) == -signal.SIGKILL
            server.release.set()
        finally:
            if sender.poll() is None:
                sender.kill()
            log.close()
        # Once its session is closed, nothing more can arrive from the killed sender: the received
        # list is the server's complete record.
        _wait_for(lambda: server.received.sessions_open == 0, 60, "the server to close the killed session")
        assert len(server.received.raw) == half  # one message in flight: nothing after the held one

        with Outbox(home / "state.db") as outbox:
            left = outbox.rows(INCIDENT_ID)
        before = Counter(r["status"] for r in left)
        assert before["sent"] == half - 1 and 1 <= before["sending"] <= 100  # the rest of one claimed batch
        [in_data] = [r for r in left if r["status"] == "sending" and r["data_at"]]
        assert in_data["message_id"] == server.received.message_ids[-1]  # the one the server holds

        capsys.readouterr()
        assert main(["notify", "reconcile", INCIDENT_ID, "--home", str(home),
                     "--delivered", str(server.ids_file), "--complete", "--json"]) == EXIT_OK
        settled = json.loads(capsys.readouterr().out)
        assert settled == {"delivered": 1, "requeued": 0, "still_unknown": 0}  # found by its Message-ID
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
