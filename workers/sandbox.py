"""Run torch/CUDA work in a spawned child process that a crash or a hang cannot take down.

Why (reliability.md §4): CUDA does not survive ``fork()`` and the Celery pool forks, so the
worker process never initialises CUDA; an illegal memory access poisons a CUDA context until
the process is rebuilt; the Triton autotuner has no timeout. So every candidate runs in a
*spawned* child:

* the child is started once and reused from trial to trial (importing torch and compiling
  kernels is paid once, not per trial), and replaced after a crash or a timeout;
* each call has a wall-clock timeout, which the caller keeps shorter than the Celery task's
  soft limit (`workers.execute` passes ``ctx.time_limit_s``);
* outcomes map to failure reasons as in the reliability table:

  =================================================  ===========  =========================
  what happened in the child                         reason       what the sandbox does
  =================================================  ===========  =========================
  ``torch.OutOfMemoryError``, ``MemoryError``,        ``oom``      keep the child
  CPU allocator failure
  Triton compile / out-of-resources / ptxas error    ``compile``  keep the child
  ``EvalFailure`` raised by the evaluator            its reason   keep (replace if crash)
  past the wall-clock timeout                        ``timeout``  SIGKILL, fresh child next
  child died (signal, segfault) or a sticky CUDA     ``crash``    fresh child, run once
  error (illegal address, device-side assert)                     more, then fail
  any other exception                                ``error``    keep the child
  =================================================  ===========  =========================

A memory cap (``memory_limit_bytes``, applied with ``RLIMIT_AS`` in the child) makes CPU
out-of-memory deterministic and testable, and protects the worker's host from a design too
large for it.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import AuthenticationString  # type: ignore[attr-defined]
from multiprocessing.process import BaseProcess
from typing import Any

from workers.evaluators.base import EvalFailure
from workers.evaluators.base import EvalOutcome
from workers.evaluators.base import FailureReason
from workers.evaluators.base import TrialContext

__all__ = ["Sandbox", "classify_exception", "configure_default_sandbox", "default_sandbox"]

logger = logging.getLogger(__name__)

# Modules the child imports before it says "ready", so that their import time (torch: ~2 s
# on the 2-core dev machine) is not charged to the first trial's timeout.
DEFAULT_PRELOAD: tuple[str, ...] = ("torch", "workers.evaluators")
# How long a fresh child may take to import `preload` and report ready.
START_TIMEOUT_S = 180.0
# Triton exception classes that mean "this kernel/config cannot be built or launched here".
_TRITON_COMPILE_ERRORS = frozenset(
    {"CompilationError", "CompileTimeAssertionFailure", "OutOfResources", "PTXASError"}
)
# RuntimeError texts that mean the CUDA context is poisoned: only a new process recovers.
_STICKY_CUDA_ERRORS = (
    "illegal memory access",
    "device-side assert",
    "unspecified launch failure",
    "CUDA error: misaligned address",
    "CUBLAS_STATUS_EXECUTION_FAILED",
)
_CPU_ALLOC_ERRORS = ("DefaultCPUAllocator: can't allocate memory", "std::bad_alloc")


class _ChildCrashed(Exception):
    """The child died or its CUDA context is unusable; the call may be retried once."""


def classify_exception(exc: BaseException) -> tuple[FailureReason, str, bool]:
    """``(reason, message, replace_child)`` for an exception raised inside the child."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, EvalFailure):
        return exc.reason, exc.message, exc.reason == "crash"
    names = {cls.__name__ for cls in type(exc).__mro__ if cls.__module__.startswith("triton")}
    if names & _TRITON_COMPILE_ERRORS:
        return "compile", text, False
    if type(exc).__name__ == "OutOfMemoryError" or isinstance(exc, MemoryError):
        return "oom", text, False
    if isinstance(exc, RuntimeError):
        message = str(exc)
        if any(s in message for s in _CPU_ALLOC_ERRORS):
            return "oom", text, False
        if any(s in message for s in _STICKY_CUDA_ERRORS):
            return "crash", text, True
    tail = "".join(traceback.format_exception(exc)[-6:])
    return "error", f"{text}\n{tail}", False


def _child_main(conn: Connection, memory_limit_bytes: int | None, preload: Sequence[str]) -> None:
    # The parent owns Ctrl-C: a terminal's SIGINT reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_limit_bytes is not None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    for name in preload:
        importlib.import_module(name)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # parent gone
        if message is None:
            return
        fn, args, kwargs = message
        try:
            result = fn(*args, **kwargs)
            reply: tuple[Any, ...] = ("ok", result)
        except BaseException as exc:  # noqa: BLE001 - everything becomes a reasoned failure
            reason, text, replace = classify_exception(exc)
            retry = bool(getattr(exc, "retry", False))
            reply = ("fail", reason, text, replace, retry)
            del exc
            _release_memory()
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
            conn.send(("fail", "error", f"cannot send the result back: {exc!r}", False, False))


def _release_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _evaluate_in_child(evaluator: str, ctx: TrialContext) -> EvalOutcome:
    from workers.evaluators.base import get_evaluator

    return get_evaluator(evaluator).evaluate(ctx)


@contextlib.contextmanager
def _allow_children() -> Iterator[None]:
    """Let a daemonic process (a Celery prefork pool worker) start the sandbox child.

    billiard marks its pool workers daemonic and installs them as multiprocessing's current
    process, and multiprocessing refuses children of daemonic processes ("daemonic processes
    are not allowed to have children"). The rule exists so that orphans are not left behind;
    the sandbox child exits on its own when the pipe to its parent closes, so the flag is
    lifted for the duration of ``start()``, and billiard's unpicklable authkey is swapped for
    multiprocessing's own type.
    """
    config = mp.current_process()._config  # type: ignore[attr-defined]
    daemonic = config.get("daemon", False)
    authkey = config.get("authkey")
    if daemonic:
        config["daemon"] = False
    if authkey is not None and type(authkey) is not AuthenticationString:
        # billiard's AuthenticationString refuses to pickle outside billiard's own spawning,
        # and spawn sends the parent's authkey to the child.
        config["authkey"] = AuthenticationString(bytes(authkey))
    try:
        yield
    finally:
        if daemonic:
            config["daemon"] = True
        if authkey is not None:
            config["authkey"] = authkey


class Sandbox:
    """A reusable spawned child that runs picklable callables with a wall-clock timeout."""

    def __init__(
        self,
        *,
        memory_limit_bytes: int | None = None,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        crash_retries: int = 1,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        if memory_limit_bytes is not None and memory_limit_bytes <= 0:
            raise ValueError(f"`memory_limit_bytes > 0` must hold, but got {memory_limit_bytes}")
        if crash_retries < 0:
            raise ValueError(f"`crash_retries >= 0` must hold, but got {crash_retries}")
        self.memory_limit_bytes = memory_limit_bytes
        self.preload = tuple(preload)
        self.crash_retries = crash_retries
        self.start_timeout_s = start_timeout_s
        self._mp = mp.get_context("spawn")
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._owner_pid = os.getpid()
        # Observability (and what the tests check): how many children were started.
        self.children_started = 0

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The current child's pid, or None when no child is running."""
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def _start(self) -> None:
        parent, child = self._mp.Pipe(duplex=True)
        with _allow_children():
            # Inside: a Process copies the current process's config (authkey) when made.
            proc = self._mp.Process(
                target=_child_main,
                args=(child, self.memory_limit_bytes, self.preload),
                name="ffnas-sandbox",
                daemon=True,
            )
            proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self.children_started += 1
        if not parent.poll(self.start_timeout_s):
            self._kill()
            raise EvalFailure(
                "crash", f"sandbox child did not start within {self.start_timeout_s:.0f} s"
            )
        try:
            parent.recv()
        except EOFError:
            code = proc.exitcode
            self._kill()
            raise EvalFailure(
                "crash", f"sandbox child died while starting (exit code {code})"
            ) from None
        logger.info("sandbox child %s started", proc.pid)

    def _ensure(self) -> Connection:
        if self._owner_pid != os.getpid():
            # This object was inherited through fork(): the child belongs to the parent.
            self._proc, self._conn, self._owner_pid = None, None, os.getpid()
        if self._proc is None or not self._proc.is_alive() or self._conn is None:
            self._kill()
            self._start()
        assert self._conn is not None  # set by _start
        return self._conn

    def _kill(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc, self._conn = None, None
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.is_alive():
                proc.kill()
            proc.join(timeout=10)
            proc.close()

    def close(self) -> None:
        """Ask the child to exit, then make sure it has."""
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(timeout=5)
            except OSError:
                pass
        self._kill()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- calls -----------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, timeout_s: float, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in the child; raises `EvalFailure` with a reason."""
        if timeout_s <= 0:
            raise ValueError(f"`timeout_s > 0` must hold, but got timeout_s={timeout_s}")
        attempt = 0
        while True:
            try:
                return self._call_once(fn, args, kwargs, timeout_s)
            except _ChildCrashed as crash:
                self._kill()
                if attempt < self.crash_retries:
                    attempt += 1
                    logger.warning("sandbox child crashed (%s); retrying in a fresh child", crash)
                    continue
                raise EvalFailure(
                    "crash", f"{crash} (after {attempt + 1} attempts in fresh children)"
                ) from None

    def run(self, ctx: TrialContext, *, evaluator: str) -> EvalOutcome:
        """Evaluate one trial in the child, with ``ctx.time_limit_s`` as the timeout."""
        result = self.call(_evaluate_in_child, evaluator, ctx, timeout_s=ctx.time_limit_s)
        if not isinstance(result, EvalOutcome):
            raise EvalFailure("error", f"evaluator returned {type(result).__name__}")
        return result

    def _call_once(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout_s: float,
    ) -> Any:
        conn = self._ensure()
        started = time.monotonic()
        try:
            conn.send((fn, args, kwargs))
        except (BrokenPipeError, EOFError, OSError) as exc:
            raise _ChildCrashed(f"could not reach the sandbox child: {exc}") from None
        try:
            ready = conn.poll(timeout_s)
            reply: tuple[Any, ...] = conn.recv() if ready else ()
        except (EOFError, OSError):
            raise _ChildCrashed(self._death_text()) from None
        except BaseException:
            # E.g. Celery's SoftTimeLimitExceeded raised into this thread: the child is still
            # busy with this call and would answer the next one with this call's result.
            self._kill()
            raise
        if not ready:
            pid = self.pid
            self._kill()
            raise EvalFailure(
                "timeout",
                f"no result within the time limit of {timeout_s:g} s; child {pid} killed",
            )
        logger.debug("sandbox call took %.3f s", time.monotonic() - started)
        if reply[0] == "ok":
            return reply[1]
        _, reason, text, replace, retry = reply
        if reason == "crash" and replace:
            raise _ChildCrashed(text)
        if replace:
            self._kill()
        raise EvalFailure(reason, text, retry=retry)

    def _death_text(self) -> str:
        proc = self._proc
        if proc is None:
            return "sandbox child is gone"
        proc.join(timeout=5)
        code = proc.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"sandbox child {proc.pid} was killed by {name}"
        return f"sandbox child {proc.pid} exited with code {code}"


_DEFAULT: Sandbox | None = None
_DEFAULT_KWARGS: dict[str, Any] = {}


def configure_default_sandbox(**kwargs: Any) -> None:
    """Set the options (e.g. ``memory_limit_bytes``) of the worker's shared sandbox."""
    global _DEFAULT
    if _DEFAULT is not None:
        _DEFAULT.close()
        _DEFAULT = None
    _DEFAULT_KWARGS.clear()
    _DEFAULT_KWARGS.update(kwargs)


def default_sandbox() -> Sandbox:
    """The process's sandbox, created on first use and reused by every trial."""
    global _DEFAULT
    if _DEFAULT is None or _DEFAULT._owner_pid != os.getpid():
        _DEFAULT = Sandbox(**_DEFAULT_KWARGS)
    return _DEFAULT
