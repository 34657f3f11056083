"""Checks behind the study's command line (:mod:`emm_lib.study`): which options a subcommand uses,
one option's value at a time, and whether a Ray cluster answers, so a bad command line stops with one
line that names the option and the fix instead of a traceback (or, worse, runs and ignores the option).
"""
from __future__ import annotations

import argparse
import socket
from typing import Sequence

from emm_lib.study.shared.experiment import EXPERIMENT_OPTIONS, command_families

__all__ = ["options_used", "unused_options", "check_options", "check_values", "check_ray_address"]


def options_used(experiment: str) -> tuple[str, ...]:
    """The options subcommand ``experiment`` reads (its family's :attr:`~.Experiment.options_used`)."""
    family = command_families().get(experiment)
    return family.options_used.get(experiment, EXPERIMENT_OPTIONS) if family else EXPERIMENT_OPTIONS


def _applies() -> dict[str, str]:
    """Where each family-only option applies, said when a subcommand that does not use it is given it."""
    return {dest: note for family in dict.fromkeys(command_families().values()) for dest, note in family.applies.items()}


def _why(experiment: str) -> str | None:
    """Why a subcommand reads so few options."""
    family = command_families().get(experiment)
    return family.why.get(experiment) if family else None


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def unused_options(experiment: str, args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """The options given on the command line (not at their default) that ``experiment`` does not read."""
    used = options_used(experiment)
    return [dest for dest, value in vars(args).items()
            if dest != "experiment" and dest not in used and value != parser.get_default(dest)]


def check_options(experiment: str, args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``parser.error`` listing every option ``experiment`` would ignore (and where each one applies)."""
    unused = unused_options(experiment, args, parser)
    if args.address is not None and args.executor != "ray" and "address" not in unused:
        parser.error("--address names a Ray cluster and applies to --executor ray only; add --executor ray "
                     "or drop --address.")
    if not unused:
        return
    flags = ", ".join(_flag(d) for d in unused)
    applies, why = _applies(), _why(experiment)
    notes = " ".join([applies[d] for d in unused if d in applies]
                     + ([why] if any(d not in applies for d in unused) and why else []))
    parser.error(f"'{experiment}' does not use {flags}; drop {'it' if len(unused) == 1 else 'them'}."
                 + (f" {notes}" if notes else ""))


def check_values(parser: argparse.ArgumentParser, values: Sequence[tuple[str, str, object]]) -> None:
    """Each ``(flag, setting, value)`` checked alone (:func:`emm_lib.params.coerce_settings`), so the
    error names the option: ``argument --epochs: Need epochs >= 1, got 0.``"""
    from emm_lib.params import coerce_settings

    for flag, name, value in values:
        if value is None:
            continue
        try:
            coerce_settings({name: value})
        except ValueError as exc:
            parser.error(f"argument {flag}: {exc}")


def check_ray_address(address: str | None, timeout: float = 3.0) -> None:
    """A ConnectionError when nothing answers at ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``),
    within ``timeout`` seconds; ``None``, ``auto`` and ``local`` pass (Ray finds or starts those)."""
    if address is None or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, the address "
                         "`ray start --head` prints).")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConnectionError(f"No Ray cluster answers at {address} ({exc.strerror or exc}); start one there "
                              "with `ray start --head`, fix the address, or drop --address to start a local "
                              "instance.") from None
