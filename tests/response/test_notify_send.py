"""`crmguard notify send/status/reconcile/bounces` against a real SMTP server on localhost (aiosmtpd):
languages, retries with backoff, permanent failures, unknown outcomes, bounces, the journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from notify_fixtures import DROP, INCIDENT_ID, SUBJECT_MARKER, customer, many_customers, smtp_server, write_incident

from crmguard.cli import EXIT_ERROR, EXIT_OK, main
from crmguard.response.incidents import IncidentStore
from crmguard.response.notify_cli import EXIT_INCOMPLETE
from crmguard.response.outbox import Outbox, Row

pytestmark = pytest.mark.integration


def _send(home: Path, port: int, *extra: str) -> int:
    return main(["notify", "send", INCIDENT_ID, "--home", str(home), "--smtp", f"127.0.0.1:{port}",
                 "--from", "Maison A <notices@maison-exemple.com>", "--rate", "0", "--retry-base", "0.01", *extra])


def _statuses(home: Path) -> dict[str, str]:
    with Outbox(home / "state.db") as outbox:
        return {r["customer_id"]: r["status"] for r in outbox.rows(INCIDENT_ID)}


def test_every_customer_gets_one_notice_in_their_language(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    rows, expected = many_customers(36)
    write_incident(home, rows)
    with smtp_server(tmp_path) as (server, port):
        assert _send(home, port) == EXIT_OK
        assert _send(home, port) == EXIT_OK  # nothing left: sends nothing again
        got = server.received
        assert len(got.raw) == 36
        assert got.sessions_total == 2  # one connection per run, reused for every message
        for i, rcpt in enumerate(got.recipients):
            cid = rcpt.split("@")[0].upper()
            msg = got.parsed(i)
            want = expected[cid]
            assert msg["Content-Language"] == want
            assert SUBJECT_MARKER[want] in msg["Subject"]
            assert msg["Message-ID"] == got.message_ids[i]
            assert msg.get_body(("plain",)).get_content().strip()
    out = capsys.readouterr()
    assert "@example.org" not in out.out + out.err  # no addresses in the report
    assert set(_statuses(home).values()) == {"sent"}
    assert main(["notify", "status", INCIDENT_ID, "--home", str(home), "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["total"] == 36 and report["by_status"]["sent"] == 36
    assert report["by_language"]["en"]["sent"] == sum(want == "en" for want in expected.values())  # en, ko, none
    store = IncidentStore(home / "state.db", home / "incidents")
    actions = [r[0] for r in store.db.execute("SELECT action FROM incident_journal WHERE incident_id = ?", (INCIDENT_ID,))]
    store.close()
    assert actions == ["notify send started", "notify send finished"] * 2


def test_temporary_failure_is_retried_with_backoff_then_sent(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_incident(home, [customer("003A", "fr", "FR"), customer("003B", "de", "DE")])
    with smtp_server(tmp_path, reply=lambda n, env: "451 4.3.0 try again later" if n <= 3 else None) as (server, port):
        assert _send(home, port, "--max-attempts", "5") == EXIT_OK
        assert sorted(server.received.recipients) == ["003a@example.org", "003b@example.org"]
    with Outbox(home / "state.db") as outbox:
        rows = {r["customer_id"]: r for r in outbox.rows(INCIDENT_ID)}
    assert {r["status"] for r in rows.values()} == {"sent"}
    assert sum(r["attempts"] for r in rows.values()) == 5  # 3 refusals + 2 deliveries


def test_temporary_failures_stop_at_max_attempts(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    write_incident(home, [customer("003A", "fr", "FR")])
    with smtp_server(tmp_path, reply=lambda n, env: "421 4.7.0 busy") as (server, port):
        assert _send(home, port, "--max-attempts", "3") == EXIT_INCOMPLETE
        assert server.calls == 3 and not server.received.raw
    with Outbox(home / "state.db") as outbox:
        [row] = outbox.rows(INCIDENT_ID)
    assert row["status"] == "failed_temp" and row["attempts"] == 3 and row["last_error"].startswith("421")


def test_permanent_failure_is_recorded_and_not_retried(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_incident(home, [customer("003A", "it", "IT"), customer("003B", "it", "IT")])
    refuse = lambda n, env: "550 5.1.1 mailbox unavailable" if env.rcpt_tos == ["003a@example.org"] else None  # noqa: E731
    with smtp_server(tmp_path, reply=refuse) as (server, port):
        assert _send(home, port) == EXIT_OK
        assert _send(home, port) == EXIT_OK
        assert server.calls == 2 and server.received.recipients == ["003b@example.org"]
    with Outbox(home / "state.db") as outbox:
        rows = {r["customer_id"]: r for r in outbox.rows(INCIDENT_ID)}
    assert rows["003A"]["status"] == "failed_perm" and rows["003A"]["attempts"] == 1
    assert rows["003A"]["last_error"] == "550 5.1.1 mailbox unavailable"
    assert rows["003B"]["status"] == "sent"


def _leave_in_flight(home: Path, customer_id: str, data_started: bool = True) -> str:
    """What a sender killed mid-transaction leaves: the row claimed (``sending``) and, once its DATA
    started, ``data_at`` set. Returns the row's Message-ID."""
    with Outbox(home / "state.db") as outbox:
        row = next(Row(**{k: r[k] for k in Row.__dataclass_fields__}) for r in outbox.rows(INCIDENT_ID)
                   if r["customer_id"] == customer_id)
        assert outbox.claim([row], outbox.start_run(INCIDENT_ID)) == [row]
        if data_started:
            outbox.mark_data(row)
        return row.message_id


def test_unknown_outcomes_are_not_resent_without_the_flag(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    write_incident(home, [customer("003A", "ja", "JP"), customer("003B", "zh", "CN")])
    with Outbox(home / "state.db") as outbox:
        outbox.enqueue(INCIDENT_ID, home / "incidents" / INCIDENT_ID / "affected_customers.parquet", "v1",
                       ("en", "ja", "zh"), "maison-exemple.com")
    _leave_in_flight(home, "003A")
    with smtp_server(tmp_path) as (server, port):
        assert _send(home, port) == EXIT_INCOMPLETE
        assert server.received.recipients == ["003b@example.org"]
        err = capsys.readouterr().err
        assert "1 notices have an unknown outcome" in " ".join(err.split())
        assert "notify reconcile" in err and "--resend-unknown" in err
        assert _send(home, port) == EXIT_INCOMPLETE  # still not resent
        assert server.received.recipients == ["003b@example.org"]
        assert _statuses(home)["003A"] == "unknown"
        assert _send(home, port, "--resend-unknown") == EXIT_OK  # the user decided
        assert server.received.recipients == ["003b@example.org", "003a@example.org"]
    assert set(_statuses(home).values()) == {"sent"}


def test_reconcile_settles_unknowns_by_message_id(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    write_incident(home, [customer(f"003{c}", "en", "GB") for c in "ABC"])
    with Outbox(home / "state.db") as outbox:
        outbox.enqueue(INCIDENT_ID, home / "incidents" / INCIDENT_ID / "affected_customers.parquet", "v1",
                       ("en",), "maison-exemple.com")
    delivered = _leave_in_flight(home, "003A")
    _leave_in_flight(home, "003B")
    log = tmp_path / "maillog"
    log.write_text(f"Mar  6 10:00:01 mx postfix/cleanup[123]: 4XyZ: message-id={delivered}\n")
    with smtp_server(tmp_path) as (server, port):
        assert _send(home, port) == EXIT_INCOMPLETE  # sends 003C; A and B unknown
        assert main(["notify", "reconcile", INCIDENT_ID, "--home", str(home), "--delivered", str(log), "--json"]) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"delivered": 1, "requeued": 0, "still_unknown": 1}
        assert _statuses(home) == {"003A": "sent", "003B": "unknown", "003C": "sent"}
        # The log is the server's complete record: B was not delivered, so it is sent now.
        assert main(["notify", "reconcile", INCIDENT_ID, "--home", str(home), "--delivered", str(log), "--complete"]) == 0
        assert _send(home, port) == EXIT_OK
        assert sorted(server.received.recipients) == ["003b@example.org", "003c@example.org"]
    assert set(_statuses(home).values()) == {"sent"}


DSN = """From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: notices@maison-exemple.com
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-1@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.
--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown

--B
Content-Type: text/rfc822-headers

From: notices@maison-exemple.com
To: {rcpt}
Message-ID: {mid}
Subject: notice

--B--
"""


def test_bounces_from_dsn_mbox_and_list(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    write_incident(home, [customer(f"003{c}", "de", "DE") for c in "ABCD"])
    with smtp_server(tmp_path) as (server, port):
        assert _send(home, port) == EXIT_OK
    capsys.readouterr()
    with Outbox(home / "state.db") as outbox:
        ids = {r["customer_id"]: r["message_id"] for r in outbox.rows(INCIDENT_ID)}
    eml = tmp_path / "bounce.eml"
    eml.write_text(DSN.format(rcpt="003a@example.org", mid=ids["003A"]))
    mbox = tmp_path / "bounces.mbox"
    mbox.write_text("From MAILER-DAEMON Thu Mar  6 10:00:00 2025\n" + DSN.format(rcpt="003b@example.org", mid="<unrelated@x>")
                    + "\nFrom MAILER-DAEMON Thu Mar  6 10:00:01 2025\n"
                    + DSN.format(rcpt="someone@else.org", mid="<other@x>").replace("Action: failed", "Action: delayed"))
    listing = tmp_path / "bounces.txt"
    listing.write_text(f"# message-id or address, reason\n{ids['003C']} mailbox full\nnobody@nowhere.org gone\n")
    assert main(["notify", "bounces", INCIDENT_ID, str(eml), "--home", str(home), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"recorded": 1, "unmatched": 0, "ignored": 0}
    assert main(["notify", "bounces", INCIDENT_ID, str(mbox), "--home", str(home), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"recorded": 1, "unmatched": 0, "ignored": 1}  # matched by address
    assert main(["notify", "bounces", INCIDENT_ID, str(listing), "--home", str(home), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"recorded": 1, "unmatched": 1, "ignored": 0}
    with Outbox(home / "state.db") as outbox:
        rows = {r["customer_id"]: r for r in outbox.rows(INCIDENT_ID)}
    assert {c: r["status"] for c, r in rows.items()} == {"003A": "bounced", "003B": "bounced", "003C": "bounced",
                                                        "003D": "sent"}
    assert rows["003A"]["last_error"].startswith("5.1.1 smtp; 550 5.1.1")


def test_connection_lost_after_the_data_is_unknown_not_retried(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    write_incident(home, [customer("003A", "fr", "FR"), customer("003B", "fr", "FR")])
    drop_first = lambda n, env: DROP if n == 1 else None  # noqa: E731 - server got it, the 250 never came
    with smtp_server(tmp_path, reply=drop_first) as (server, port):
        assert _send(home, port) == EXIT_INCOMPLETE
        assert len(server.received.raw) == 2 and server.calls == 2  # the second went on a new connection
        first = server.received.recipients[0].split("@")[0].upper()
        assert _statuses(home)[first] == "unknown"
        assert _send(home, port) == EXIT_INCOMPLETE and server.calls == 2  # not resent
        assert main(["notify", "reconcile", INCIDENT_ID, "--home", str(home), "--delivered",
                     str(server.ids_file)]) == EXIT_OK
    assert set(_statuses(home).values()) == {"sent"}


def test_claimed_rows_whose_data_never_started_are_simply_queued_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_incident(home, [customer("003A", "en", "GB"), customer("003B", "en", "GB")])
    with Outbox(home / "state.db") as outbox:
        outbox.enqueue(INCIDENT_ID, home / "incidents" / INCIDENT_ID / "affected_customers.parquet", "v1",
                       ("en",), "maison-exemple.com")
    _leave_in_flight(home, "003A", data_started=False)
    _leave_in_flight(home, "003B", data_started=True)
    with Outbox(home / "state.db") as outbox:
        assert outbox.recover(INCIDENT_ID) == 1
        rows = {r["customer_id"]: r for r in outbox.rows(INCIDENT_ID)}
    assert (rows["003A"]["status"], rows["003A"]["attempts"]) == ("pending", 0)
    assert rows["003B"]["status"] == "unknown"


def test_after_a_reboot_every_claimed_row_is_unknown(tmp_path: Path, monkeypatch) -> None:
    import crmguard.response.outbox as outbox_module

    home = tmp_path / "home"
    write_incident(home, [customer("003A", "en", "GB")])
    with Outbox(home / "state.db") as outbox:
        outbox.enqueue(INCIDENT_ID, home / "incidents" / INCIDENT_ID / "affected_customers.parquet", "v1",
                       ("en",), "maison-exemple.com")
    _leave_in_flight(home, "003A", data_started=False)
    monkeypatch.setattr(outbox_module, "current_boot", lambda: "another-boot")
    with Outbox(home / "state.db") as outbox:
        assert outbox.recover(INCIDENT_ID) == 1  # its data_at mark may have been lost with the page cache
        assert outbox.rows(INCIDENT_ID)[0]["status"] == "unknown"


def test_missing_incident_files_name_the_file_and_the_command(tmp_path: Path, capsys) -> None:
    assert main(["notify", "send", INCIDENT_ID, "--home", str(tmp_path), "--smtp", "127.0.0.1:25"]) == EXIT_ERROR
    err = " ".join(capsys.readouterr().err.split())
    assert "incident.json" in err and f"crmguard incident scope {INCIDENT_ID} --customers FILE" in err
    folder = tmp_path / "incidents" / INCIDENT_ID
    folder.mkdir(parents=True)
    (folder / "incident.json").write_text("{}")
    assert main(["notify", "send", INCIDENT_ID, "--home", str(tmp_path), "--smtp", "127.0.0.1:25"]) == EXIT_ERROR
    assert "affected_customers.parquet" in capsys.readouterr().err


def test_preview_shows_one_notice_on_request(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    write_incident(home, [customer("003A", "", "CH", first_name="Lena", last_name="Keller")])
    assert main(["notify", "preview", INCIDENT_ID, "003A", "--home", str(home)]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "Content-Language: de" in shown and "Guten Tag Lena Keller," in shown


def test_a_run_stopped_by_an_error_leaves_nothing_in_flight(tmp_path: Path, monkeypatch) -> None:
    from crmguard.response import mailer as mailer_module

    home = tmp_path / "home"
    write_incident(home, [customer(f"003{c}", "it", "IT") for c in "ABCDE"])
    real_send = mailer_module.Mailer.send
    calls = []

    def send(self, msg, sender, recipient, before_data=None):
        calls.append(recipient)
        if len(calls) == 3:  # Ctrl-C while the third message's data is going out
            before_data()
            raise KeyboardInterrupt
        return real_send(self, msg, sender, recipient, before_data)

    monkeypatch.setattr(mailer_module.Mailer, "send", send)
    with smtp_server(tmp_path) as (server, port):
        assert _send(home, port) == 130  # the conventional exit status after Ctrl-C
    statuses = _statuses(home)
    interrupted = calls[2].split("@")[0].upper()
    assert statuses[interrupted] == "unknown"
    assert sorted(statuses.values()) == ["pending", "pending", "sent", "sent", "unknown"]


def test_no_notice_goes_out_without_the_controllers_contact_point(tmp_path: Path, capsys) -> None:
    from notify_fixtures import INCIDENT

    home = tmp_path / "home"
    unset = {**INCIDENT, "controller": {"name": "Maison Exemple SA", "contact_email": "UNSET", "dpo_email": "UNSET",
                                        "phone": "UNSET"}}
    write_incident(home, [customer("003A", "fr", "FR")], incident=unset)
    with smtp_server(tmp_path) as (server, port):
        assert _send(home, port) == EXIT_ERROR
        assert server.calls == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "incident.json" in err and f"crmguard incident controller {INCIDENT_ID}" in err


@pytest.mark.parametrize("decision", [None, "no-notify-subjects"])
def test_no_notice_goes_out_without_a_recorded_decision_to_notify(tmp_path: Path, capsys, decision) -> None:
    home = tmp_path / "home"
    write_incident(home, [customer("003A", "fr", "FR")], decision=decision)
    with smtp_server(tmp_path) as (server, port):
        assert _send(home, port) == EXIT_ERROR
        assert server.calls == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"crmguard incident decide {INCIDENT_ID} --notify --audience subjects" in err


def test_status_of_an_incident_that_does_not_exist_is_an_error(tmp_path: Path, capsys) -> None:
    assert main(["notify", "status", "INC-9", "--home", str(tmp_path)]) == EXIT_ERROR
    assert "no incident 'INC-9'" in " ".join(capsys.readouterr().err.split())
