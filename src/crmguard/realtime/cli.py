"""``crmguard watch``: the Typer command, as a plain function ``cli.py`` registers."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from crmguard.errors import ConfigError
from crmguard.workspace import resolve

EXIT_OK = 0


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--listen must be HOST:PORT (e.g. 127.0.0.1:8787), not {text!r}", field="--listen")
    return host.strip("[]") or "127.0.0.1", int(port)


def read_token(token_env: str | None, token_file: str | None) -> str | None:
    """The bearer token from environment variable ``token_env`` or the first line of ``token_file``
    (None when neither is given). Raises ``ConfigError`` when the one named is missing or empty."""
    if token_env:
        value = os.environ.get(token_env, "").strip()
        if not value:
            raise ConfigError(f"environment variable {token_env} is not set or empty", field="--token-env")
        return value
    if token_file:
        try:
            lines = Path(token_file).read_text().strip().splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file: {exc.strerror}", file=token_file) from exc
        value = lines[0].strip() if lines else ""
        if not value:
            raise ConfigError("the token file is empty", file=token_file)
        return value
    return None


def watch_command(
    home: Annotated[Optional[str], typer.Option("--home", help="Workspace folder (default: $CRMGUARD_HOME or ./crmguard-data).")] = None,
    lake: Annotated[Optional[str], typer.Option("--lake", help="Lake folder (default: <home>/lake).")] = None,
    state: Annotated[Optional[str], typer.Option("--state", help="State SQLite DB (default: <home>/state.db).")] = None,
    inbox: Annotated[Optional[str], typer.Option("--inbox", help="Folder to pick up new log files from (they are moved into <home>/spool).")] = None,
    listen: Annotated[Optional[str], typer.Option("--listen", help="HOST:PORT for POST /v1/events, /healthz and /metrics.")] = None,
    token_env: Annotated[Optional[str], typer.Option("--token-env", help="Environment variable holding the bearer token for POSTs.")] = None,
    token_file: Annotated[Optional[str], typer.Option("--token-file", help="File whose first line is the bearer token.")] = None,
    max_body: Annotated[int, typer.Option("--max-body", help="Largest accepted POST body, in bytes.", min=1)] = 16 << 20,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between micro-batches.", min=0.0)] = 1.0,
    late_tolerance: Annotated[float, typer.Option("--late-tolerance", help="Seconds behind the watermark an event may "
                                                  "arrive and find the match cache ready (a later one makes it "
                                                  "rebuild from the lake: slower, same alerts).", min=0.0)] = 3600.0,
    status_every: Annotated[float, typer.Option("--status-every", help="Seconds between status lines on stderr.", min=0.1)] = 10.0,
    rules: Annotated[Optional[list[str]], typer.Option("--rules", help="Folder of extra Sigma rules (repeatable).")] = None,
    sinks: Annotated[Optional[str], typer.Option("--sinks", help="Sinks config to deliver alerts with (default: <home>/sinks.yml when it exists).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Process what is waiting (inbox, spool, new lake files), then exit.")] = False,
    baselines: Annotated[bool, typer.Option("--baselines", help="Also update the behavioural baselines and raise their "
                                            "anomalies after new events (see `crmguard baseline update`).")] = False,
    baseline_every: Annotated[float, typer.Option("--baseline-every", help="Seconds between baseline updates "
                                                  "(events arriving meanwhile wait for the next one).", min=0.0)] = 60.0,
    compact_fanout: Annotated[int, typer.Option("--compact-fanout", help="Merge a partition's evaluated lake files "
                                                "this many at a time, by size tier (0: never).", min=0)] = 8,
    compact_grace: Annotated[float, typer.Option("--compact-grace", help="Seconds merged-away files stay on disk "
                                                 "for readers that listed them before.", min=0.0)] = 600.0,
) -> int:
    """Detect in real time: ingest log files dropped into --inbox and events POSTed to --listen in
    micro-batches, run the rules incrementally, store and deliver alerts; crash-safe (restart
    resumes without losing or repeating anything)."""
    from crmguard.realtime.compaction import CompactionPolicy
    from crmguard.realtime.http import Server, create_app
    from crmguard.realtime.watch import Watcher, WatchOptions

    err = Console(stderr=True)
    ws = resolve(home, lake, state)
    token = read_token(token_env, token_file)
    address = _listen(listen) if listen else None
    if address and token is None and address[0] not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError("listening beyond loopback needs a bearer token: give --token-env or --token-file",
                          field="--listen")
    sinks_config = None
    sinks_path = Path(sinks) if sinks else ws.home / "sinks.yml"
    if sinks or sinks_path.exists():
        from crmguard.sinks.config import load_config

        sinks_config = load_config(sinks_path)
    options = WatchOptions(lake=ws.lake, state=ws.state, spool=ws.home / "spool", inbox=Path(inbox) if inbox else None,
                           interval_s=interval, status_every_s=status_every, rule_dirs=[Path(r) for r in rules or []],
                           intel_dir=ws.intel, sinks=sinks_config, baselines=baselines, baseline_every_s=baseline_every,
                           late_tolerance_s=late_tolerance,
                           compaction=CompactionPolicy(fanout=compact_fanout, grace_s=compact_grace))
    if options.inbox is not None:
        options.inbox.mkdir(parents=True, exist_ok=True)
    watcher = Watcher(options, log=lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True))
    stop = threading.Event()
    server = None
    try:
        started = time.monotonic()
        watcher.recover()
        where = [f"inbox {options.inbox}"] if options.inbox else []
        if address and not once:
            app = create_app(watcher.spool, watcher.metrics, token, max_body, watcher.health)
            server = Server(app, *address)
            host, port = server.start()
            where.append(f"http://{host}:{port}/v1/events ({'bearer token' if token else 'no token, loopback only'})")
        cache, idents = watcher.cache.size()
        err.print(f"watch: {', '.join(where) or 'the spool'} → lake {ws.lake}, state {ws.state}; {len(watcher.rules)} "
                  f"rules, {cache:,} candidate events loaded in {time.monotonic() - started:.1f} s; batches every "
                  f"{interval:g} s" + ("; delivering to " + ", ".join(s.name for s in sinks_config.sinks)
                                       if sinks_config else "") + ("" if once else "; Ctrl-C stops"),
                  markup=False, highlight=False, soft_wrap=True)
        if watcher.rules.skipped:
            err.print(f"watch: {watcher.rules.skipped_note()}", markup=False, highlight=False, soft_wrap=True)
        previous = {}
        if not once and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: stop.set())
        try:
            batches = watcher.run(stop, once=once)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        err.print(watcher.metrics.status_line(), markup=False, highlight=False, soft_wrap=True)
        err.print(f"watch: stopped after {batches:,} batches", markup=False, highlight=False)
    finally:
        if server is not None:
            server.stop()
        watcher.close()
    return EXIT_OK
