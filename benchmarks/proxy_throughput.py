"""Proxy training throughput vs a plain PyTorch loop training the same model (goal >= 0.9x).

Both train ``build_model(design, backend="torch")`` with the same AdamW, gradient clipping,
batch shape and step count; the plain loop draws its batches up front and does nothing else
(no schedule, no NaN checks, no validation), so the ratio is the cost of `train_proxy`'s
machinery. Each side runs ``--repeats`` times, alternating, and the fastest run of each
counts (on a shared machine preemption only ever adds time). Validation is excluded from the
proxy's time by giving it a single checkpoint over 64 bytes.

    .venv/bin/python -m benchmarks.proxy_throughput [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from workers.build import build_model
from workers.proxy import ProxySettings
from workers.proxy import load_corpus
from workers.proxy import train_proxy

logger = logging.getLogger("proxy_throughput")
RESULTS = Path(__file__).resolve().parent / "results"


def design(width: int) -> FFNDesign:
    dims = ModelDims(
        d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, vocab=256, seq_len=256, dtype="fp32"
    )
    return FFNDesign(dims=dims, layers=(LayerFFN(width=width),) * 4)


def plain_loop(d: FFNDesign, settings: ProxySettings, device: str) -> float:
    """Seconds for the same number of steps in the simplest correct training loop."""
    corpus = load_corpus(max_bytes=settings.max_corpus_bytes)
    gen = torch.Generator().manual_seed(0)
    offsets = torch.arange(settings.seq_len + 1)
    high = corpus.train.numel() - settings.seq_len - 1
    batches = [
        corpus.train[
            torch.randint(0, high, (settings.batch_size,), generator=gen)[:, None] + offsets
        ]
        .long()
        .to(device)
        for _ in range(settings.steps)
    ]
    model = build_model(d, backend="torch", device=device, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.95))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for batch in batches:
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, 256), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "proxy_throughput.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    settings = ProxySettings(
        tokens=args.steps * 16 * 128,
        batch_size=16,
        seq_len=128,
        checkpoints=1,
        eval_tokens=64,
        max_corpus_bytes=2 << 20,
        threads=args.threads,
    )
    d = design(args.width)
    train_proxy(d, settings, seed=0, device=args.device)  # warm-up: corpus, allocator
    proxy_s, plain_s = [], []
    for _ in range(args.repeats):
        proxy_s.append(train_proxy(d, settings, seed=0, device=args.device).seconds)
        plain_s.append(plain_loop(d, settings, args.device))
    tokens = settings.steps * settings.batch_size * settings.seq_len
    proxy_tps, plain_tps = tokens / min(proxy_s), tokens / min(plain_s)
    summary = {
        "device": args.device,
        "threads": args.threads,
        "design": [layer.summary() for layer in d.layers],
        "d_model": d.dims.d_model,
        "steps": settings.steps,
        "tokens_per_step": settings.batch_size * settings.seq_len,
        "proxy_seconds": proxy_s,
        "plain_seconds": plain_s,
        "proxy_tokens_per_s": proxy_tps,
        "plain_tokens_per_s": plain_tps,
        "ratio": proxy_tps / plain_tps,
        "goal": 0.9,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    logger.info(
        "train_proxy %.0f tok/s vs plain loop %.0f tok/s: ratio %.3f (goal >= 0.9) -> %s",
        proxy_tps,
        plain_tps,
        proxy_tps / plain_tps,
        args.out,
    )


if __name__ == "__main__":
    main()
