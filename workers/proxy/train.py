"""Proxy quality: train a small byte-level LM built from the design, report bits per byte.

The model is ``build_model(design, backend="torch")`` (the torch references compute the same
function as the Triton kernels and have autograd), trained from scratch with AdamW on
random windows of the corpus for a fixed token budget. Validation bits per byte (the mean
next-byte cross-entropy in nats / ln 2, over fixed validation windows) is computed at
``checkpoints`` evenly spaced steps and sent to ``report(step, bpb)``; when ``report``
returns True the controller has pruned the trial and training stops.

Reproducibility: on CPU, a fixed seed gives the same losses to 1e-6 (same weights from
`build_model`'s seeded init, a data order drawn from a seeded generator,
``torch.use_deterministic_algorithms(True)`` and a fixed thread count for the run; global
torch state is restored afterwards because the sandbox child is reused). On GPU, training
runs under bf16 autocast; cuBLAS/atomics make it reproducible only to ~1e-3.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator
from torch import Tensor

from search_space.design import FFNDesign
from workers.evaluators.base import EvalFailure
from workers.proxy.corpus import Corpus
from workers.proxy.corpus import load_corpus

__all__ = ["ProxyResult", "ProxySettings", "train_proxy"]

logger = logging.getLogger(__name__)

BYTE_VOCAB = 256
LN2 = math.log(2.0)


class ProxySettings(BaseModel):
    """How a proxy trial trains (a job's ``evaluator.settings`` for `proxy`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens: int = Field(default=262_144, ge=1, description="Training budget in bytes (tokens).")
    batch_size: int = Field(default=8, ge=1, le=4096)
    seq_len: int = Field(default=128, ge=8, le=65_536, description="Training window.")
    lr: float = Field(default=3e-3, gt=0, le=1.0)
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="Cosine floor / lr.")
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = Field(default=10, ge=0)
    weight_decay: float = Field(default=0.1, ge=0)
    beta1: float = Field(default=0.9, ge=0, lt=1)
    beta2: float = Field(default=0.95, ge=0, lt=1)
    grad_clip: float = Field(default=1.0, ge=0, description="Max grad norm; 0 disables.")
    checkpoints: int = Field(default=4, ge=1, le=1000, description="Validations per run.")
    eval_tokens: int = Field(default=16_384, ge=64, description="Validation bytes per check.")
    corpus: list[str] | None = Field(default=None, description="Text files/folders; None: stdlib.")
    corpus_glob: str | None = None
    val_percent: int = Field(default=10, gt=0, lt=100)
    max_corpus_bytes: int = Field(default=8 << 20, ge=1024)
    threads: int | None = Field(default=None, ge=1, description="CPU threads; None: torch's.")
    deterministic: bool = True
    nan_check_every: int = Field(default=16, ge=1)

    @model_validator(mode="after")
    def _check(self) -> ProxySettings:
        per_step = self.batch_size * self.seq_len
        if self.tokens < per_step:
            raise ValueError(
                f"`tokens >= batch_size * seq_len` must hold (at least one step), but got "
                f"tokens={self.tokens}, batch_size * seq_len={per_step}"
            )
        return self

    @property
    def steps(self) -> int:
        return self.tokens // (self.batch_size * self.seq_len)

    def checkpoint_steps(self) -> list[int]:
        """Steps after which validation runs: evenly spaced, the last one at the end."""
        n = min(self.checkpoints, self.steps)
        return sorted({max(1, round(self.steps * (i + 1) / n)) for i in range(n)})


class ProxyResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bpb: float = Field(description="Validation bits per byte at the last checkpoint reached.")
    curve: list[tuple[int, float]] = Field(description="(step, validation bpb) per checkpoint.")
    train_losses: list[float] = Field(description="Training loss (nats) of every step.")
    tokens: int = Field(description="Training tokens actually consumed.")
    steps: int
    seconds: float
    pruned: bool = False


def _lr_at(step: int, settings: ProxySettings) -> float:
    """Linear warm-up, then constant or cosine decay to ``min_lr_ratio * lr``."""
    if settings.warmup_steps and step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    if settings.schedule == "constant":
        return settings.lr
    span = max(1, settings.steps - settings.warmup_steps)
    progress = min(1.0, (step - settings.warmup_steps) / span)
    floor = settings.lr * settings.min_lr_ratio
    return floor + 0.5 * (settings.lr - floor) * (1.0 + math.cos(math.pi * progress))


@contextmanager
def _torch_state(settings: ProxySettings, device: torch.device) -> Iterator[None]:
    """Deterministic algorithms and a fixed thread count for one run, restored afterwards."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        if settings.threads is not None:
            torch.set_num_threads(settings.threads)
        if settings.deterministic and device.type == "cpu":
            torch.use_deterministic_algorithms(True)
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _validation_windows(corpus: Corpus, settings: ProxySettings) -> Tensor:
    """Fixed windows of ``seq_len + 1`` bytes spread evenly over the validation split."""
    width = settings.seq_len + 1
    n = max(1, settings.eval_tokens // settings.seq_len)
    last = corpus.val.numel() - width
    if last < 0:
        raise EvalFailure(
            "invalid",
            f"validation split has {corpus.val.numel()} bytes, fewer than seq_len + 1 = {width}",
        )
    starts = torch.linspace(0, last, n).long()
    return torch.stack([corpus.val[s : s + width] for s in starts.tolist()]).long()


@torch.no_grad()
def _validate(
    model: torch.nn.Module, windows: Tensor, settings: ProxySettings, device: torch.device
) -> float:
    model.eval()
    total = 0.0
    count = 0
    for chunk in windows.split(settings.batch_size):
        chunk = chunk.to(device)
        with _autocast(device):
            logits = model(chunk[:, :-1])
        loss = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1), reduction="sum"
        )
        total += float(loss)
        count += chunk[:, 1:].numel()
    model.train()
    return total / count / LN2


def _autocast(device: torch.device) -> torch.autocast:
    # bf16 autocast on GPU (DESIGN.md "Three ways to score quality"); fp32 on CPU.
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
    )


def train_proxy(
    design: FFNDesign,
    settings: ProxySettings,
    *,
    seed: int = 0,
    report: Callable[[int, float], bool] | None = None,
    device: str = "cpu",
) -> ProxyResult:
    """Train ``design`` as a byte-level LM for ``settings.tokens`` bytes; see module doc."""
    if design.dims.vocab < BYTE_VOCAB:
        raise EvalFailure(
            "invalid",
            f"proxy training is byte-level: `dims.vocab >= 256` must hold, "
            f"but got vocab={design.dims.vocab}",
        )
    if settings.seq_len > design.dims.seq_len:
        raise EvalFailure(
            "invalid",
            f"`seq_len <= dims.seq_len` must hold, but got seq_len={settings.seq_len}, "
            f"dims.seq_len={design.dims.seq_len}",
        )
    dev = torch.device(device)
    corpus = load_corpus(
        settings.corpus,
        pattern=settings.corpus_glob,
        val_percent=settings.val_percent,
        max_bytes=settings.max_corpus_bytes,
    )
    if corpus.train.numel() <= settings.seq_len + 1:
        raise EvalFailure("invalid", f"training split has only {corpus.train.numel()} bytes")
    with _torch_state(settings, dev):
        return _train(design, settings, corpus, seed, report, dev)


def _train(
    design: FFNDesign,
    settings: ProxySettings,
    corpus: Corpus,
    seed: int,
    report: Callable[[int, float], bool] | None,
    device: torch.device,
) -> ProxyResult:
    from workers.build import build_model

    started = time.perf_counter()
    torch.manual_seed(seed)
    model = build_model(design, backend="torch", device=device, dtype=torch.float32, seed=seed)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.lr,
        betas=(settings.beta1, settings.beta2),
    )
    windows = _validation_windows(corpus, settings)
    data_gen = torch.Generator(device="cpu").manual_seed(seed)
    train = corpus.train
    offsets = torch.arange(settings.seq_len + 1)
    high = train.numel() - settings.seq_len - 1
    checkpoints = set(settings.checkpoint_steps())
    curve: list[tuple[int, float]] = []
    losses: list[Tensor] = []
    pruned = False
    step = 0
    for step in range(1, settings.steps + 1):
        starts = torch.randint(0, high, (settings.batch_size,), generator=data_gen)
        batch = train[starts[:, None] + offsets].long().to(device, non_blocking=True)
        lr = _lr_at(step - 1, settings)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with _autocast(device):
            logits = model(batch[:, :-1])
        loss = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        losses.append(loss.detach())
        if step % settings.nan_check_every == 0 or step in checkpoints:
            value = float(loss.detach())
            if not math.isfinite(value):
                raise EvalFailure("nan", f"training loss is {value} at step {step} (lr {lr:.3g})")
        if step in checkpoints:
            bpb = _validate(model, windows, settings, device)
            if not math.isfinite(bpb):
                raise EvalFailure("nan", f"validation bpb is {bpb} at step {step}")
            curve.append((step, bpb))
            logger.debug("step %d: train loss %.4f, val bpb %.4f", step, value, bpb)
            if report is not None and report(step, bpb):
                pruned = True
                break
    train_losses = torch.stack(losses).float().cpu().tolist() if losses else []
    return ProxyResult(
        bpb=curve[-1][1],
        curve=curve,
        train_losses=train_losses,
        tokens=step * settings.batch_size * settings.seq_len,
        steps=step,
        seconds=time.perf_counter() - started,
        pruned=pruned,
    )
