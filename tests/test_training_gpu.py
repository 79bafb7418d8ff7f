"""Training on a CUDA GPU in bf16, checked against the CPU fp32 path; skipped where there is no GPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import ROOT, make_example
from curation.datasets.snapshots import create_snapshot
from curation.store import Store
from schemas.training import TrainConfig
from tiny_lm import tiny_config, tiny_lm, train_here  # noqa: F401
from training import runs
from training.hardware import resolve_precision

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture
def gpu_snapshot(tmp_path: Path):
    """A few approved examples in a fresh store (no demo: the GPU machine needs no validation stack)."""
    from curation.people import users

    store = Store(tmp_path / "goldsmith.db")
    for name, role in {"ada": "admin", "lee": "lead", "amy": "author", "rita": "reviewer"}.items():
        users.add_user(store, None if role == "admin" else "ada", name, role, password="correct horse battery")
    questions = [
        ("My car broke down on the interstate. Who do I call?", "Call roadside assistance at 1-800-555-0199, day or night."),
        (
            "Does my policy cover a rental car after an accident?",
            "Yes, if you added rental reimbursement; check your declarations page.",
        ),
        (
            "How do I add my teenage son to my auto policy?",
            "Sign in, open Drivers, choose Add driver and enter his license number.",
        ),
        ("Is hail damage to my roof covered?", "Hail is a covered peril under your homeowners policy, minus the deductible."),
        (
            "Can I pay my premium in monthly installments?",
            "Yes. Monthly billing adds a small fee; switch under Billing > Payment plan.",
        ),
        (
            "I locked my keys in the car. Can you help?",
            "Yes. Lockout service is part of roadside assistance; call 1-800-555-0199.",
        ),
        ("Why did my premium go up this year?", "Rates rose across your state; a recent claim can also raise your premium."),
        ("How long does a glass claim take?", "Most windshield claims are settled the same day the shop sends its bill."),
        ("Do you cover flood damage?", "Standard homeowners policies exclude floods; ask us about flood insurance."),
        ("How do I reset my online password?", "Choose Forgot password on the sign-in page; we email you a reset link."),
    ]
    for prompt, response in questions:
        make_example(store, "approved", prompt=prompt, response=response)
    snapshot = create_snapshot(store, "lee", "gpu", eval_fraction=0.2, validate=False)
    yield store, snapshot
    store.close()


def test_auto_precision_is_bf16_on_a_bf16_gpu():
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert resolve_precision(TrainConfig(), "cuda") == expected
    assert resolve_precision(TrainConfig(precision="fp16"), "cuda") == "fp16"


def test_bf16_on_cuda_trains_and_agrees_with_the_cpu_path(gpu_snapshot, tiny_lm):  # noqa: F811
    store, snapshot = gpu_snapshot
    settings = {"batch_size": 8, "max_steps": 6, "eval_every": 3, "save_every": 3}
    gpu = runs.create_run(store, "lee", snapshot.id, tiny_config(tiny_lm, **settings, precision="bf16"), name="gpu")
    torch.cuda.reset_peak_memory_stats()
    assert train_here(store.path, gpu.id) == "completed"
    gpu = runs.get_run(store, gpu.id)
    stats = json.loads((Path(gpu.run_dir) / "data_stats.json").read_text())
    assert stats["device"].startswith("cuda") and stats["precision"] == "bf16" == gpu.result["precision"]
    assert Path(gpu.run_dir, "adapter", "adapter_model.safetensors").is_file()
    train = runs.metrics(store, gpu.id, kind="train")
    assert [p.step for p in train] == list(range(1, 7)) and all(math.isfinite(p.loss) for p in train)
    assert all(p.memory_mb > 0 for p in train)
    evals = runs.metrics(store, gpu.id, kind="eval")
    assert [p.step for p in evals] == [0, 3, 6] and evals[-1].eval_loss < evals[0].eval_loss

    # The same run on the CPU in fp32 (a worker that sees no GPU). LoRA starts as the identity, so
    # the base eval loss and the first step's loss must agree up to bf16 rounding.
    cpu = runs.create_run(store, "lee", snapshot.id, tiny_config(tiny_lm, **settings, precision="fp32"), name="cpu")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        runs.worker_command(str(store.path), cpu.id), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((Path(cpu.run_dir) / "data_stats.json").read_text())["device"] == "cpu"
    cpu_evals = runs.metrics(store, cpu.id, kind="eval")
    cpu_train = runs.metrics(store, cpu.id, kind="train")
    assert evals[0].eval_loss == pytest.approx(cpu_evals[0].eval_loss, rel=1e-2)
    assert train[0].loss == pytest.approx(cpu_train[0].loss, rel=1e-2)
    assert evals[-1].eval_loss == pytest.approx(cpu_evals[-1].eval_loss, rel=5e-2)
