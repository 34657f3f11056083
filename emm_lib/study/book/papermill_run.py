"""Run notebooks with papermill over an encrypted kernel transport.

    python -m emm_lib.study.book.papermill_run IN.ipynb OUT.ipynb [any papermill option]

The same command line as ``papermill`` (``emm_lib.study.book.run_notebook``, which the Makefile uses, runs
papermill with the same settings: :func:`engine_kwargs`). Plain papermill starts the kernel on TCP without
transport encryption, and ipykernel (7.x) then warns "Kernel is running over TCP without
encryption" on every run. This entry point asks jupyter_client's kernel manager to provision
CurveZMQ keys (``KernelManager.transport_encryption = "auto"``, honoured when the kernelspec
declares ``supported_encryption: curve``, as ipykernel's does), so the channel is encrypted and
the warning has no cause; without CurveZMQ in libzmq it uses IPC sockets instead. Its kernels
see ``EMM_NOTEBOOK_BATCH=1`` (no widget frontend: interactive cells draw static figures). An output
path that is the input notebook is refused before the kernel starts (:func:`guarded_execute`).
"""
from __future__ import annotations

import os

from jupyter_client import AsyncKernelManager
from papermill.engines import NBClientEngine, papermill_engines
from traitlets.config import Config

__all__ = ["transport_config", "QuietShutdownKernelManager", "engine_kwargs", "EncryptedEngine", "guarded_execute",
           "main"]


def transport_config() -> Config:
    """Kernel-manager settings: CurveZMQ encryption when libzmq has it, else IPC transport."""
    import zmq

    if zmq.has("curve"):
        return Config({"KernelManager": {"transport_encryption": "auto"}})
    return Config({"KernelManager": {"transport": "ipc"}})


class QuietShutdownKernelManager(AsyncKernelManager):
    """nbclient's kernel manager without the interrupt jupyter_client sends before a graceful shutdown.

    papermill shuts the kernel down after the last cell finished, so there is nothing to
    interrupt; a SIGINT that lands while the kernel still handles a message only makes ipykernel
    log "KeyboardInterrupt caught in kernel". Interrupts outside shutdown (a cell timeout) pass.
    """

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:
            return
        await super()._async_interrupt_kernel()


def engine_kwargs() -> dict:
    """Keyword arguments for ``papermill.execute_notebook`` (passed on to nbclient): the encrypted
    transport and the quiet shutdown. Also marks the kernels as batch runs (``EMM_NOTEBOOK_BATCH``)."""
    os.environ.setdefault("EMM_NOTEBOOK_BATCH", "1")  # kernels inherit it: notebooks draw static figures
    return {"config": transport_config(), "kernel_manager_class": QuietShutdownKernelManager}


class EncryptedEngine(NBClientEngine):
    """papermill's nbclient engine with :func:`transport_config` applied to the kernel manager."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
        for k, v in engine_kwargs().items():
            kwargs.setdefault(k, v)
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)


def guarded_execute(input_path, output_path, *args, **kwargs):
    """``papermill.execute_notebook`` that first refuses an output path that is the input notebook
    (one line on stderr, exit status 2)."""
    import sys

    from papermill.execute import execute_notebook

    from emm_lib.params import check_output_path

    if isinstance(input_path, (str, os.PathLike)) and isinstance(output_path, (str, os.PathLike)) \
            and str(output_path) != "-":
        try:
            check_output_path(input_path, output_path)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
    return execute_notebook(input_path, output_path, *args, **kwargs)


def main() -> None:
    import papermill.cli as cli

    cli.execute_notebook = guarded_execute  # the CLI calls the name it imported
    papermill_engines.register(None, EncryptedEngine)
    papermill_engines.register("nbclient", EncryptedEngine)
    cli.papermill(prog_name="papermill")


if __name__ == "__main__":
    main()
