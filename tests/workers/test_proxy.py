"""Proxy training: corpus split, reproducibility, reporting, pruning, NaN, the evaluator."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.workload import Workload
from workers.evaluators.base import EvalFailure
from workers.evaluators.base import TrialContext
from workers.evaluators.base import get_evaluator
from workers.evaluators.proxy import UNTRAINED_BPB
from workers.proxy import ProxySettings
from workers.proxy import load_corpus
from workers.proxy import train_proxy
from workers.proxy.corpus import stdlib_root

DIMS = ModelDims(
    d_model=32, n_layers=2, n_heads=2, n_kv_heads=1, vocab=256, seq_len=64, dtype="fp32"
)
DESIGN = FFNDesign(
    dims=DIMS, layers=(LayerFFN(width=64), LayerFFN(kind="moe", width=32, experts=2, top_k=1))
)
# 12 steps of 4 x 32 bytes, validation at steps 4, 8, 12 on 1 KiB.
FAST = ProxySettings(
    tokens=12 * 4 * 32,
    batch_size=4,
    seq_len=32,
    checkpoints=3,
    eval_tokens=1024,
    max_corpus_bytes=256 << 10,
    threads=1,
    warmup_steps=2,
)


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    assert torch.get_num_threads() == threads  # train_proxy restores global torch state
    assert not torch.are_deterministic_algorithms_enabled()


def test_stdlib_corpus_splits_by_path_hash() -> None:
    corpus = load_corpus(max_bytes=64 << 10)
    assert corpus.source == "stdlib"
    assert corpus.train.dtype == torch.uint8 and corpus.train.numel() == 64 << 10
    assert 0 < corpus.val.numel() <= (64 << 10) // 10
    assert corpus.train_files > 0 and corpus.val_files > 0
    assert stdlib_root().is_dir()


def test_user_folder_split_follows_the_hash_rule(tmp_path: Path) -> None:
    names = [f"doc{i}.txt" for i in range(40)]
    for i, name in enumerate(names):
        (tmp_path / name).write_text(f"file {i} " * 50)
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01" * 600)  # binary: skipped
    corpus = load_corpus([str(tmp_path)], val_percent=20, max_bytes=1 << 20)

    def is_val(name: str) -> bool:
        return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % 100 < 20

    val_names = [n for n in names if is_val(n)]
    assert corpus.val_files == len(val_names) and corpus.train_files == 40 - len(val_names)
    val_text = bytes(corpus.val.tolist())
    train_text = bytes(corpus.train.tolist())
    for i, name in enumerate(names):
        marker = f"file {i} ".encode()
        assert (marker in val_text) == is_val(name)
        assert (marker in train_text) != is_val(name)
    assert b"\x00" not in train_text + val_text


def test_single_file_splits_by_bytes(tmp_path: Path) -> None:
    path = tmp_path / "one.txt"
    path.write_bytes(bytes(range(32, 127)) * 40)
    corpus = load_corpus([str(path)], val_percent=10, max_bytes=1 << 20)
    data = path.read_bytes()
    cut = len(data) * 90 // 100
    assert bytes(corpus.train.tolist()) == data[:cut]
    assert bytes(corpus.val.tolist()) == data[cut:]


def test_too_small_corpus_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tiny.txt").write_text("hello")
    with pytest.raises(ValueError, match="too small"):
        load_corpus([str(tmp_path)])


def test_settings_validation_names_the_rule() -> None:
    with pytest.raises(ValueError, match="tokens >= batch_size \\* seq_len"):
        ProxySettings(tokens=10, batch_size=4, seq_len=32)
    assert ProxySettings(
        tokens=1000, batch_size=1, seq_len=100, checkpoints=4
    ).checkpoint_steps() == [2, 5, 8, 10]


def test_training_is_reproducible_for_a_fixed_seed() -> None:
    first = train_proxy(DESIGN, FAST, seed=3)
    again = train_proxy(DESIGN, FAST, seed=3)
    other = train_proxy(DESIGN, FAST, seed=4)
    assert len(first.train_losses) == 12
    assert first.train_losses == pytest.approx(again.train_losses, abs=1e-6, rel=0)
    assert [v for _, v in first.curve] == pytest.approx(
        [v for _, v in again.curve], abs=1e-6, rel=0
    )
    assert first.train_losses != pytest.approx(other.train_losses, abs=1e-6, rel=0)
    # Learning happens: validation bpb falls below a uniform guess (8 bits per byte).
    assert first.bpb < UNTRAINED_BPB
    assert first.tokens == FAST.tokens and not first.pruned


def test_intermediate_values_reach_the_reporter() -> None:
    seen: list[tuple[int, float]] = []

    def report(step: int, value: float) -> bool:
        seen.append((step, value))
        return False

    result = train_proxy(DESIGN, FAST, seed=0, report=report)
    assert [s for s, _ in seen] == FAST.checkpoint_steps() == [4, 8, 12]
    assert seen == result.curve
    assert result.bpb == seen[-1][1]


def test_a_pruned_trial_stops_at_the_checkpoint() -> None:
    calls: list[int] = []

    def report(step: int, value: float) -> bool:
        calls.append(step)
        return step >= 4  # the controller prunes at the first checkpoint

    result = train_proxy(DESIGN, FAST, seed=0, report=report)
    assert result.pruned and calls == [4]
    assert result.steps == 4 and result.tokens == 4 * 4 * 32
    assert len(result.train_losses) == 4


def test_a_diverging_run_fails_with_reason_nan() -> None:
    blowup = FAST.model_copy(
        update={"lr": 1.0e6, "grad_clip": 0.0, "warmup_steps": 0, "nan_check_every": 1}
    )
    with pytest.raises(EvalFailure) as info:
        train_proxy(DESIGN, blowup, seed=0)
    assert info.value.reason == "nan"


def test_byte_level_needs_a_byte_vocabulary() -> None:
    small = FFNDesign(dims=DIMS.model_copy(update={"vocab": 100}), layers=DESIGN.layers)
    with pytest.raises(EvalFailure, match="vocab >= 256"):
        train_proxy(small, FAST)


# --- the `proxy` evaluator in-process (the sandbox is tested in test_sandbox.py) -------------
def _ctx(
    settings: dict[str, object], objectives: tuple[str, ...] = ("bpb", "latency_ms")
) -> TrialContext:
    return TrialContext(
        trial_id="t",
        job_id="j",
        attempt=1,
        design=DESIGN,
        workload=Workload(phase="decode", batch=1, seq=64),
        target="cpu",
        objectives=objectives,
        settings=settings,
        seed=5,
    )


EVAL_SETTINGS = {
    **FAST.model_dump(exclude_none=True, exclude_defaults=True),
    "cache": "memory",
}


def test_proxy_evaluator_reports_latency_and_bpb() -> None:
    evaluator = get_evaluator("proxy")
    assert evaluator.needs_sandbox and evaluator.reports_intermediate
    settings = evaluator.validate_settings(dict(EVAL_SETTINGS))
    outcome = evaluator.evaluate(_ctx(settings))
    direct = train_proxy(DESIGN, FAST, seed=5)
    assert outcome.values["bpb"] == pytest.approx(direct.bpb, abs=1e-6)
    assert outcome.values["latency_ms"] > 0 and outcome.values["params"] > 0
    assert outcome.latency is not None and outcome.layer_latency_ms is not None
    assert outcome.target_fingerprint is not None and outcome.target_fingerprint["kind"] == "cpu"
    assert outcome.info["proxy_curve"] == [list(p) for p in direct.curve]


def test_proxy_evaluator_skips_training_over_the_latency_budget() -> None:
    settings = {**EVAL_SETTINGS, "constraints": {"latency_ms": 1e-6}}
    outcome = get_evaluator("proxy").evaluate(_ctx(settings))
    assert outcome.values["bpb"] == UNTRAINED_BPB == math.log2(256)
    assert "not trained" in outcome.info["skipped_training"]
    assert "proxy_curve" not in outcome.info


def test_proxy_evaluator_without_latency_objective_does_not_time() -> None:
    outcome = get_evaluator("proxy").evaluate(_ctx(dict(EVAL_SETTINGS), objectives=("bpb",)))
    assert "latency_ms" not in outcome.values and outcome.latency is None
    assert outcome.values["bpb"] < UNTRAINED_BPB


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tokenz": 5}, "unknown keys \\['tokenz'\\]"),
        ({"lr": -1.0}, "lr"),
        ({"cache": "disk"}, "`cache` must be"),
        ({"constraints": {"latency_ms": "fast"}}, "`constraints` must map"),
    ],
)
def test_proxy_settings_are_validated(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_evaluator("proxy").validate_settings(settings)
