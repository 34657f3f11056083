"""Run notebooks with papermill over an encrypted kernel transport.

    python -m emm_lib.papermill_run IN.ipynb OUT.ipynb [any papermill option]

The same command line as ``papermill`` (``emm_lib.run_notebook``, which the Makefile uses, runs
papermill with the same settings: :func:`engine_kwargs`). Plain papermill starts the kernel on TCP without
transport encryption, and ipykernel (7.x) then warns "Kernel is running over TCP without
encryption" on every run. This entry point asks jupyter_client's kernel manager to provision
CurveZMQ keys (``KernelManager.transport_encryption = "auto"``, honoured when the kernelspec
declares ``supported_encryption: curve``, as ipykernel's does), so the channel is encrypted and
the warning has no cause; without CurveZMQ in libzmq it uses IPC sockets instead. Its kernels
see ``EMM_NOTEBOOK_BATCH=1`` (no widget frontend: interactive cells draw static figures).
"""
from __future__ import annotations

from jupyter_client import AsyncKernelManager
from papermill.engines import NBClientEngine, papermill_engines
from traitlets.config import Config

__all__ = ["transport_config", "QuietShutdownKernelManager", "engine_kwargs", "EncryptedEngine", "main"]


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
    import os

    os.environ.setdefault("EMM_NOTEBOOK_BATCH", "1")  # kernels inherit it: notebooks draw static figures
    return {"config": transport_config(), "kernel_manager_class": QuietShutdownKernelManager}


class EncryptedEngine(NBClientEngine):
    """papermill's nbclient engine with :func:`transport_config` applied to the kernel manager."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
        for k, v in engine_kwargs().items():
            kwargs.setdefault(k, v)
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)


def main() -> None:
    from papermill.cli import papermill


    papermill_engines.register(None, EncryptedEngine)
    papermill_engines.register("nbclient", EncryptedEngine)
    papermill(prog_name="papermill")


if __name__ == "__main__":
    main()
