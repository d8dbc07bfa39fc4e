"""The IMAP benchmark's report: medians (min-max) over rounds, Barid/Dovecot ratios
per round, the printed table and the machine description. No measuring here.
"""

from __future__ import annotations

import contextlib
import os
import platform
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.imap_client import BigSample, FillResult, HeadersSample
from bench.imap_delivery import DeliverySample
from bench.imap_setup import HEADERS_AIM, fmt, spread

if TYPE_CHECKING:
    pass

# ---------------------------------------------------------------- report


def _median_of(samples: Sequence[Any], key: str) -> dict[str, float]:
    return spread([getattr(s, key) for s in samples])


def _ratios(samples: Sequence[Any], target: str, key: str) -> dict[str, Any] | None:
    per_round = []
    for rnd in sorted({s.round for s in samples}):
        mine = [s for s in samples if s.round == rnd and s.target == target]
        ref = [s for s in samples if s.round == rnd and s.target == "dovecot"]
        if mine and ref and getattr(ref[0], key) > 0:
            per_round.append(getattr(mine[0], key) / getattr(ref[0], key))
    if not per_round:
        return None
    return {**spread(per_round), "per_round": per_round}


def summarise(targets: Sequence[str], fills: dict[str, FillResult], messages: int,
              headers: list[HeadersSample], big: list[BigSample],
              deliveries: list[DeliverySample]) -> dict[str, Any]:  # fmt: skip
    summary: dict[str, Any] = {"fill": {t: {"msgs_per_s": messages / f.seconds,
                                            "append_ms_median": f.append_ms_median,
                                            "append_ms_median_nagle": f.append_ms_median_nagle}
                                        for t, f in fills.items()}}  # fmt: skip
    for t in targets:
        entry: dict[str, Any] = {}
        mine_h = [s for s in headers if s.target == t]
        if mine_h:
            keys = ("total_s", "connect_tls_s", "login_s", "select_s", "fetch_s", "client_cpu_s")
            entry["headers"] = {k: _median_of(mine_h, k) for k in keys}
            cpus = [s.server_cpu_s for s in mine_h if s.server_cpu_s is not None]
            if cpus:
                entry["headers"]["server_cpu_s"] = spread(cpus)
        mine_b = [s for s in big if s.target == t]
        if mine_b:
            entry["big"] = {k: _median_of(mine_b, k) for k in ("append_s", "fetch_s")}
        mine_d = [s for s in deliveries if s.target == t]
        if mine_d:
            entry["deliveries"] = {
                "copies_per_s": spread([s.copies / s.deliver_s for s in mine_d]),
                "deliver_s": _median_of(mine_d, "deliver_s"),
                "total_s": _median_of(mine_d, "total_s"),
                "cpu_ms_per_copy": spread([s.cpu_s * 1000 / s.copies for s in mine_d]),
            }
            if t != "dovecot":
                entry["deliveries"]["receipts_per_s"] = spread(
                    [s.receipts / s.receipts_s for s in mine_d if s.receipts_s > 0]
                )
                entry["deliveries"]["receipts_s"] = _median_of(mine_d, "receipts_s")
                entry["deliveries"]["units_per_s"] = spread(
                    [(s.copies + s.receipts) / s.total_s for s in mine_d])  # fmt: skip
        if t != "dovecot" and "dovecot" in targets:
            entry["ratio_to_dovecot"] = {
                "headers": _ratios(headers, t, "total_s"),
                "headers_fetch_only": _ratios(headers, t, "fetch_s"),
                "big_append": _ratios(big, t, "append_s"),
                "big_fetch": _ratios(big, t, "fetch_s"),
                "deliveries": _ratios(deliveries, t, "deliver_s"),
                "deliveries_with_receipts": _ratios(deliveries, t, "total_s"),
            }
        summary[t] = entry
    return summary


def print_summary(summary: dict[str, Any], targets: Sequence[str], command: str) -> None:
    print(f"\ncommand: {command}")
    print("medians (min-max) over the rounds; ratios are Barid time / Dovecot time")
    for t, f in summary["fill"].items():
        print(f"  fill     {t:8} {f['msgs_per_s']:7.1f} msg/s (APPEND, one connection), median"
              f" {f['append_ms_median']:.1f} ms; stock imaplib socket (Nagle on):"
              f" {f['append_ms_median_nagle']:.1f} ms")  # fmt: skip
    for t in targets:
        e = summary[t]
        if "headers" in e:
            h = e["headers"]
            cpu = ""
            if "server_cpu_s" in h:
                cpu = f", server CPU {fmt(h['server_cpu_s'], 1000, 0)} ms"
            print(f"  headers  {t:8} {fmt(h['total_s'], 1000, 0)} ms  [TLS"
                  f" {fmt(h['connect_tls_s'], 1000, 0)}, LOGIN {fmt(h['login_s'], 1000, 0)},"
                  f" SELECT {fmt(h['select_s'], 1000, 0)}, FETCH {fmt(h['fetch_s'], 1000, 0)};"
                  f" client CPU {fmt(h['client_cpu_s'], 1000, 0)} ms{cpu}]")  # fmt: skip
    for t in targets:
        if "big" in summary[t]:
            b = summary[t]["big"]
            print(f"  big      {t:8} APPEND {fmt(b['append_s'], 1000, 0)} ms,"
                  f" FETCH BODY[] {fmt(b['fetch_s'], 1000, 0)} ms")  # fmt: skip
    for t in targets:
        if "deliveries" in summary[t]:
            d = summary[t]["deliveries"]
            line = (f"  delivery {t:8} {fmt(d['copies_per_s'])} copies/s"
                    f" (in {fmt(d['deliver_s'], 1, 2)} s, CPU {fmt(d['cpu_ms_per_copy'])}"
                    " ms/copy)")  # fmt: skip
            if "receipts_per_s" in d:
                line += (f"; receipts {fmt(d['receipts_per_s'])}/s; whole drain"
                         f" {fmt(d['total_s'], 1, 2)} s")  # fmt: skip
            else:
                line += " over LMTP, one session"
            print(line)
    for t in targets:
        ratios = summary[t].get("ratio_to_dovecot")
        if not ratios:
            continue
        parts = [f"{k} {fmt(v, 1, 2)}" for k, v in ratios.items() if v]
        print(f"  ratio {t}/dovecot: " + "; ".join(parts))
        head = ratios.get("headers")
        if head:
            verdict = "meets" if head["median"] <= HEADERS_AIM else "MISSES"
            print(f"    headers: {head['median']:.2f}x -> {verdict} the aim"
                  f" (within {HEADERS_AIM:.0f}x of Dovecot)")  # fmt: skip


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    import sqlite3

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "cpu_model": model, "memory": memory,
            "openssl": ssl.OPENSSL_VERSION, "sqlite": sqlite3.sqlite_version}  # fmt: skip


