"""Where a sweep's drills run: a local process pool, or tasks on a Ray cluster; both hand back results in task order.

    engine = make("local", jobs=2)                       # or make("ray", workers=2)
    engine = make("ray", address="10.0.0.5:6379")        # join a running cluster
    with engine:
        for result in engine.results(tasks): ...         # run_one(task) for each, in order

An engine only runs `sweep.run_one` on each task (a drill's keyword arguments) and yields
the results in task order. Everything after that (per-seed records, totals, failing
seeds, replay commands, result files, merges) is sweep.py's, the same for every engine.

Ray (the `ray` extra) rather than Dask distributed: a sweep is thousands of independent,
CPU-bound, pure-Python tasks of 0.1-10 s that each return a small dict. That is Ray's task
model as it is (remote functions, one CPU each, results by reference); Dask's strength,
partitioned collections and task graphs with dependencies, goes unused, and its workers
run tasks in threads unless told otherwise (the GIL: one drill at a time per worker
process). `ray.init` starts a local cluster in one call or joins one at HOST:PORT.

A local cluster is the command's own: a private temporary directory (deleted after), a
random auth token in the environment (nothing written under the user's home), usage
statistics off, and `ray.shutdown()` stops every process it started, also after Ctrl-C
or an error. Joining a cluster (--address) leaves the cluster running; its workers must
run the same arcopy code as the driver (checked: a fingerprint of the source files).
"""
import hashlib
import os
import shutil
import socket
import tempfile

from . import sweep as _sweep

ENGINES = ("local", "ray")
RAY_HINT = "install the ray extra: pip install -c constraints.txt -e '.[ray]'"
CONNECT_TIMEOUT_S = 5.0
# ray keeps Unix sockets under its temporary directory (<tmp>/arcopy-ray-XXXXXXXX/session_<date>_
# <time>_<pid>/sockets/plasma_store: 85 bytes and more past <tmp>), within the 107-byte limit of
# a socket path: a $TMPDIR longer than this is not used for them (/tmp is)
_SOCKET_DIR_MAX = 20


class EngineUnavailable(Exception):
    """The engine cannot be used as asked: not installed, a malformed address (exit 2)."""


class EngineError(Exception):
    """The engine failed: no cluster at the address, a worker lost, other code on the
    cluster's workers (exit 1)."""


def make(name="local", jobs=0, workers=0, address=None):
    """An engine by name; EngineUnavailable for a bad combination of options."""
    if name == "local":
        if workers or address:
            raise EngineUnavailable("--workers and --address are the ray engine's "
                                    "(--engine ray); the local engine takes --jobs")
        return Local(jobs)
    if name == "ray":
        if jobs:
            raise EngineUnavailable("--jobs is the local engine's; the ray engine takes "
                                    "--workers N (a local cluster) or --address HOST:PORT")
        if workers and address:
            raise EngineUnavailable("--workers sizes a local cluster; a cluster joined with "
                                    "--address has its own workers")
        return Ray(workers, address)
    raise EngineUnavailable("--engine %s: not an engine (one of %s)" % (name, ", ".join(ENGINES)))


class Local:
    """A process pool of `jobs` workers (0: the CPU count) on this machine."""

    name = "local"

    def __init__(self, jobs=0):
        self.jobs = jobs or os.cpu_count() or 1
        self._ex = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(bool(exc[0]))

    def execution(self):
        return {"engine": "local", "jobs": self.jobs}

    def results(self, tasks):
        from concurrent.futures import ProcessPoolExecutor
        self._ex = ProcessPoolExecutor(max_workers=self.jobs, initializer=_ignore_sigint)
        chunk = 4 if len(tasks) >= 8 * self.jobs else 1
        yield from self._ex.map(_sweep.run_one, tasks, chunksize=chunk)

    def close(self, abort=False):
        ex, self._ex = self._ex, None
        if ex is None:
            return
        if abort:
            _stop_workers(ex)
        else:
            ex.shutdown(wait=True)


class Ray:
    """Tasks on a Ray cluster: a local one of `workers` CPUs (0: the CPU count), or the
    running cluster at `address` (HOST:PORT of its head node)."""

    name = "ray"

    def __init__(self, workers=0, address=None):
        self.workers = workers or os.cpu_count() or 1
        self.address = _check_address(address) if address else None
        self._ray = None
        self._tmp = None
        self._environ = None
        self._refs = []
        self.start_seconds = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close(bool(exc[0]))

    def execution(self):
        ex = {"engine": "ray", "jobs": self.workers}
        if self.address:
            ex["address"] = self.address
        return ex

    def start(self):
        """Import ray, start the local cluster or join the one at the address."""
        import logging
        import time
        try:
            import ray
        except ImportError:
            raise EngineUnavailable("the ray engine needs the ray package: " + RAY_HINT)
        if self.address:
            _reachable(self.address)
        t0 = time.perf_counter()
        self._ray = ray
        self._environ = dict(os.environ)     # ray.init sets variables of its own: put back
        try:
            if self.address:
                ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
                cpus = int(ray.cluster_resources().get("CPU", 0))
                if cpus < 1:
                    raise EngineError("the ray cluster at %s has no CPU to run tasks on"
                                      % self.address)
                self.workers = cpus
            else:
                self._own_environment()
                ray.init(address="local", num_cpus=self.workers, include_dashboard=False,
                         logging_level=logging.ERROR, log_to_driver=False, _temp_dir=self._tmp)
        except EngineError:
            self.close(True)
            raise
        except Exception as e:
            self.close(True)
            where = "at " + self.address if self.address else "(a local one)"
            raise EngineError("cannot start or join the ray cluster %s: %s"
                              % (where, _one_line(e)))
        self._task = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        self.start_seconds = time.perf_counter() - t0

    def _own_environment(self):
        """A private temporary directory and a random auth token for a local cluster (so
        nothing lands under the user's home or in a shared /tmp/ray), usage stats off."""
        import secrets
        base = tempfile.gettempdir()
        if len(base) > _SOCKET_DIR_MAX:
            base = "/tmp" if os.path.isdir("/tmp") else base
        self._tmp = tempfile.mkdtemp(prefix="arcopy-ray-", dir=base)
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        if not os.environ.get("RAY_AUTH_TOKEN"):
            # one token per process: ray reads it once, so a second local cluster in the same
            # process (arcopy perf sweep) must be started with the same one
            if not _TOKEN:
                _TOKEN.append(secrets.token_hex(32))
            os.environ["RAY_AUTH_TOKEN"] = _TOKEN[0]

    def results(self, tasks):
        ray = self._ray
        code = code_fingerprint()
        self._refs = [self._task.remote(kw, code) for kw in tasks]
        for kw, ref in zip(tasks, self._refs):
            try:
                r = ray.get(ref)
            except Exception as e:
                raise EngineError("a ray task failed on seed %s: %s"
                                  % (kw.get("seed"), _one_line(e)))
            if isinstance(r, dict) and "code_mismatch" in r:
                raise EngineError("the ray cluster's workers run other arcopy code (source "
                                  "fingerprint %s, here %s): install this checkout on every "
                                  "node" % (r["code_mismatch"], code))
            yield r

    def close(self, abort=False):
        ray, self._ray = self._ray, None
        if ray is not None:
            if abort and self._refs:
                for ref in self._refs:
                    try:
                        ray.cancel(ref, force=True)
                    except Exception:
                        pass
            self._refs = []
            try:
                ray.shutdown()
            except Exception:
                pass
        if self._environ is not None:
            for k in set(os.environ) - set(self._environ):
                del os.environ[k]
            os.environ.update(self._environ)
            self._environ = None
        if self._tmp:
            # a process the shutdown is still stopping may write one more log line there
            import time
            for _ in range(5):
                shutil.rmtree(self._tmp, ignore_errors=True)
                time.sleep(0.2)
                if not os.path.exists(self._tmp):
                    break
            self._tmp = None


def _ray_task(kw, code):
    """One drill in a ray worker (run_one), after checking it runs the driver's code."""
    mine = code_fingerprint()
    if mine != code:
        return {"code_mismatch": mine}
    return _sweep.run_one(kw)


_FINGERPRINT = []
_TOKEN = []


def code_fingerprint():
    """A short hash of the source a drill runs (firmware/, protocol/, host_tools/): equal
    on the driver and a worker when both run the same code."""
    if not _FINGERPRINT:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        h = hashlib.sha256()
        for top in ("firmware", "protocol", "host_tools"):
            for d, dirs, files in sorted(os.walk(os.path.join(root, top))):
                dirs.sort()
                for f in sorted(files):
                    if f.endswith(".py"):
                        path = os.path.join(d, f)
                        h.update(os.path.relpath(path, root).encode())
                        with open(path, "rb") as fh:
                            h.update(fh.read())
        _FINGERPRINT.append(h.hexdigest()[:16])
    return _FINGERPRINT[0]


def _check_address(address):
    """HOST:PORT of a ray head node (its GCS port, 6379 unless set otherwise)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in address:
        raise EngineUnavailable("--address %s: not HOST:PORT (the ray head node's address, "
                                "e.g. 10.0.0.5:6379)" % address)
    return address


def _reachable(address):
    """EngineError at once when nothing listens at the address (ray itself retries for
    minutes)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise EngineError("no ray cluster at %s: %s" % (address, e.strerror or _one_line(e)))


def _one_line(e):
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def _ignore_sigint():
    """Sweep workers leave Ctrl-C to the parent (which stops them): no traceback from each."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_workers(ex):
    """Stop a ProcessPoolExecutor's workers now (queued seeds dropped)."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        try:
            p.terminate()
        except Exception:
            pass
    for p in procs:
        try:
            p.join(2)
            if p.is_alive():
                p.kill()
                p.join(1)
        except Exception:
            pass
    _forget_pool(ex)


def _forget_pool(ex):
    """Let the pool's manager thread finish, then drop it from the interpreter's exit hook:
    Python 3.11's hook wakes every pool it knows, also one whose wake-up pipe the manager
    closed after its workers were killed, and then prints an OSError traceback at exit."""
    from concurrent.futures import process as cf_process
    t = getattr(ex, "_executor_manager_thread", None)
    if t is None:
        return
    t.join(5)
    wakeups = getattr(cf_process, "_threads_wakeups", None)
    if wakeups is not None and not t.is_alive():
        try:
            del wakeups[t]
        except KeyError:
            pass
