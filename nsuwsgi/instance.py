"""How an instance runs: a plain master, or a keeper outside a jail with the master inside.

With any isolation option (namespace, unshare, chroot, pivot_root, cap), the process the user
started stays on the host as the *keeper*: it owns what must outlive or precede the jail (the
log, the pidfile, the stats socket, the config files on the host) and the master runs jailed:

    keeper (host)  --spawn with the jail plan-->  init (PID 1)  --fork-->  master (PID 2)
                                                                            +-- daemons

The keeper relays SIGTERM/SIGINT/SIGQUIT to the jail's init, which relays them to the master.
SIGHUP is different: the keeper reads the config files again (they are not visible inside the
jail), validates them, and sends the new config to the master over a socket; the master
applies it as a diff. That is why a reload works inside a jail, where uWSGI's re-exec of a
binary from outside the jail kills the whole service. If the keeper dies, even by SIGKILL,
PDEATHSIG takes init down and the kernel kills everything in the PID namespace.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import time
from collections.abc import Callable

from nsuwsgi import linux
from nsuwsgi.errors import EXIT_RUNTIME
from nsuwsgi.loop import Loop
from nsuwsgi.master import (Log, Master, SetupError, import_what_config_needs, read_new_config,
                            run_hook_phase, setup_step, vacuum)
from nsuwsgi.options import Config, encode_config, jail_spec
from nsuwsgi.spawn import SpawnError, spawn
from nsuwsgi.spec import ProcessSpec
from nsuwsgi.systemd import Notifier, feed_watchdog

RELAYED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def run_instance(config: Config, reload_config: Callable[[], Config]) -> int:
    log = Log()
    if config["emperor"]:
        return run_emperor(config, log)
    import_what_config_needs(config)
    gc.freeze()     # the code just imported lives as long as the process: never collected
    try:
        run_hooks(config, "asap", log)
        if jail_spec(config) is None:
            run_hooks(config, "pre-jail", log)
            master = Master(config, reload_config, log)
            master.setup()
            run_hooks(config, "master-start", log)
            return master.run()
        return Keeper(config, reload_config, log).run()
    except SetupError as err:
        log(f"nsuwsgi: error: {err}")
        return EXIT_RUNTIME


def run_emperor(config: Config, log: Log) -> int:
    """The Emperor process: the instance's bookkeeping (log, pidfiles, user), then govern."""
    from nsuwsgi.emperor.emperor import Emperor
    from nsuwsgi.master import drop_privileges, log_and_pidfiles
    try:
        log_and_pidfiles(config, ("pidfile", "emperor-pidfile"))
        with setup_step(config, "chdir"):
            if config["chdir"]:
                os.chdir(config["chdir"])
        for name, value in config["env"]:       # every vassal inherits them
            os.environ[name] = value
        if config["umask"] is not None:
            os.umask(config["umask"])
        with setup_step(config, "uid"):
            drop_privileges(config["uid"], config["gid"], True, log)
        emperor = Emperor(config, log)
    except SetupError as err:
        log(f"nsuwsgi: error: {err}")
        return EXIT_RUNTIME
    except OSError as err:
        log(f"nsuwsgi: error: cannot start the Emperor: {err.strerror or err}")
        return EXIT_RUNTIME
    try:
        return emperor.run()
    finally:
        vacuum(config, ("pidfile", "emperor-pidfile"), stats=False)   # emperor-stats: its own


def run_hooks(config: Config, phase: str, log) -> None:
    """Run one phase's hooks in this process (asap, pre-jail and post-jail run here)."""
    selected = [h for h in config.hooks if h.phase == phase]
    if selected:
        run_hook_phase(selected, phase, log)


# --------------------------------------------------------------------------- the keeper

class Keeper:
    def __init__(self, config: Config, reload_config: Callable[[], Config], log: Log):
        self.config = config
        self.reload_config = reload_config
        self.log = log
        self.jail = jail_spec(config)
        self.child = None
        self.control: socket.socket | None = None
        self.exit_code: int | None = None

    def run(self) -> int:
        master = Master(self.config, self.reload_config, self.log)
        # The keeper talks to systemd or the Emperor: the jail may have no way out to them.
        self.systemd, master.systemd = master.systemd, Notifier(None)
        master.setup_outside_jail()
        run_hooks(self.config, "pre-jail", self.log)
        keeper_end, master_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control = keeper_end
        try:
            self.child = spawn(self._jail_process_spec(master, master_end), time.monotonic())
        except SpawnError as err:
            self.log(f"nsuwsgi: error: cannot start the jail: {err} "
                     f"[{self.jail.origin}] (hint: {jail_hint(err)})")
            return EXIT_RUNTIME
        finally:
            master_end.close()
            if master.stats_socket is not None:
                master.stats_socket.close()
            for sock, _ in master.listeners:        # the jailed master has them now
                sock.close()
        self.log(f"[nsuwsgi] jail started (init pid on the host: {self.child.pid})")
        return self._wait()

    def _host_side(self, jail_pid: int) -> None:
        """While the jail waits: post-jail hooks and the veth, outside, as uWSGI does."""
        os.environ["UWSGI_JAIL_PID"] = str(jail_pid)
        run_hooks(self.config, "post-jail", self.log)
        if self.jail.veth is not None:
            from nsuwsgi.jail import net
            net.setup_veth(jail_pid, self.jail.veth)

    def _jail_process_spec(self, master: Master, master_end: socket.socket) -> ProcessSpec:
        keep = [master_end.fileno()] + [sock.fileno() for sock, _ in master.listeners]
        if master.stats_socket is not None:
            keep.append(master.stats_socket.fileno())

        def inside() -> int:
            return master.run_in_jail(master_end)

        return ProcessSpec(argv=("nsuwsgi-master",), executable="", env=(),
                           stdin_devnull=True, pass_fds=tuple(keep), new_session=True,
                           pdeathsig=int(signal.SIGKILL),
                           jail=jail_plan(self.jail).replace(relay_to_group=False), run=inside,
                           host_setup=self._host_side if self._host_has_work() else None)

    def _host_has_work(self) -> bool:
        """Without post-jail hooks or a veth the jail need not wait for the keeper."""
        return self.jail.veth is not None or any(h.phase == "post-jail"
                                                 for h in self.config.hooks)

    def _wait(self) -> int:
        loop = Loop()
        for sig in RELAYED:
            loop.on_signal(sig, self._relay)
        loop.on_signal(signal.SIGHUP, lambda s: self._reload())
        loop.add_reader(self.child.pidfd, lambda: self._jail_ended(loop))
        self.systemd.ready(status="nsuwsgi is ready (jailed)")
        feed_watchdog(self.systemd, loop)
        try:
            loop.run(until=lambda: self.exit_code is not None)
        finally:
            loop.close()
            os.close(self.child.pidfd)
            self.control.close()
            vacuum(self.config)             # the pidfile and stats socket are the keeper's
            self.systemd.close()
        return self.exit_code

    def _relay(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.systemd.stopping()
        try:
            linux.pidfd_send_signal(self.child.pidfd, signum)
        except ProcessLookupError:
            pass

    def _jail_ended(self, loop: Loop) -> None:
        status = linux.reap_pidfd(self.child.pidfd)
        if status is None:
            return
        loop.remove_reader(self.child.pidfd)
        code = os.waitstatus_to_exitcode(status)
        self.exit_code = code if code >= 0 else 128 - code
        self.log(f"[nsuwsgi] jail ended (exit code {self.exit_code})")

    def _reload(self) -> None:
        """Read the config on the host, check it, and hand it to the master in the jail."""
        self.log("[nsuwsgi] graceful reload: reading the configuration again")
        self.systemd.reloading()
        new = read_new_config(self.reload_config, self.log)
        self.systemd.ready(status="nsuwsgi is ready (jailed)")
        if new is None:
            return
        if jail_spec(new) != self.jail:
            self.log("[nsuwsgi] the jail options changed; they take effect when nsuwsgi "
                     "restarts (the rest of the new configuration is applied now)")
        self.control.send(encode_config(new))


def jail_hint(err: SpawnError) -> str:
    if err.errno == 1:          # EPERM
        return "namespaces, mounts and pivot_root need root"
    if err.stage == "pivot_root":
        return "the rootfs must be a directory on a filesystem that allows pivot_root"
    if err.stage == "bind_mount":
        return "create the mount point inside the rootfs"
    return "see docs/namespaces.md"


def jail_plan(jail):
    from nsuwsgi.jail.plan import plan      # only jailed instances import the jail's code
    return plan(jail)
