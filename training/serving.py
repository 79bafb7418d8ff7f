"""Serve a tuned adapter (or a base model) over an OpenAI-compatible API, with its model card.

The server is transformers' own (`transformers serve`, in `transformers.cli.serving`): chat and
text completions, streaming, the Responses API. It serves full model folders, so a run's adapter
is first merged into its base model once (peft `merge_and_unload`) and saved as `merged/` in the
run folder; a run trained with `merge: true` already has it. The model is pinned: it is loaded
before the server listens and answers under the run id. Goldsmith adds the model card (lineage,
config, eval losses, the blind win rate) to `GET /v1/models`, `GET /v1/models/{id}` and
`GET /v1/models/{id}/card`.

fastapi, openai and uvicorn are imported inside the functions that need them, as torch is.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation.errors import GoldsmithError, InvalidInput
from curation.store import Store
from schemas.training import BaseModelCard, ModelCard, Run
from training.evaluation.blind import evaluation, win_rate
from training.evaluation.promotion import current_promotion, gate_for_run, promoted_run_id
from training.playground import BASE_PREFIX
from training.runs import get_run, log_event

MERGED = "merged"
METRIC_KEYS = (
    "base_eval_loss",
    "final_eval_loss",
    "eval_loss_drop",
    "best_eval_loss",
    "best_step",
    "steps",
    "total_steps",
    "early_stopped",
    "train_tokens",
    "tokens_per_s",
    "precision",
)


@dataclass(frozen=True)
class ServedModel:
    """What one server serves: the name clients ask for, the model folder, and its card."""

    name: str
    folder: str
    card: Callable[[], ModelCard | BaseModelCard]

    def card_json(self) -> dict[str, Any]:
        """The card as the server sends it."""
        return self.card().model_dump(mode="json")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def model_card(store: Store, run_id: str) -> ModelCard:
    """A run's model card: lineage, config, training metrics, the evaluation report and the blind win rate.

    Args:
        store: the store the run is recorded in.
        run_id: a run id or unique id prefix.

    Returns:
        The card (`model_dump(mode="json")` is what the server sends). `evaluation` is None until
        the run is evaluated; `win_rate` counts the reviewers' votes so far (its `win_rate` is None
        with no votes).
    """
    run = get_run(store, run_id)
    run_dir = Path(run.run_dir)
    lineage = _read_json(run_dir / "lineage.json")
    report = evaluation(store, run.id)
    promotion = current_promotion(store)
    promoted = promotion is not None and promotion.run_id == run.id
    # A promoted run shows the gate it passed; any other evaluated run, the default gate applied now.
    gate = promotion.gate if promotion is not None and promoted else (gate_for_run(store, run.id) if report else None)
    result = _read_json(run_dir / "result.json") or run.result
    merged = run_dir / MERGED
    return ModelCard(
        id=run.id,
        name=run.name,
        status=run.status,
        snapshot={"id": run.snapshot_id, "name": lineage.get("snapshot_name")},
        base_model=run.base_model,
        base_model_path=lineage.get("base_model_path"),
        config_hash=run.config_hash,
        code_version=run.code_version,
        created_by=run.created_by,
        created_at=run.created_at,
        finished_at=run.finished_at,
        config=run.config,
        lineage=lineage,
        metrics={key: result.get(key) for key in METRIC_KEYS},
        evaluation=report,
        win_rate=win_rate(store, run.id),
        adapter=str(run_dir / "adapter"),
        merged=str(merged) if (merged / "config.json").exists() else None,
        gate=gate,
        promoted=promoted,
    )


def base_card(name: str, folder: str) -> BaseModelCard:
    """The card of a base model served as it is (no run, no adapter)."""
    return BaseModelCard(id=f"{BASE_PREFIX}{name}", base_model=name, base_model_path=folder)


def _checked_run(store: Store, run_ref: str) -> Run:
    run = get_run(store, run_ref)
    if run.status != "completed":
        raise InvalidInput(f"run {run.id} is {run.status}; only a completed run has an adapter to serve")
    if not (Path(run.run_dir) / "adapter" / "adapter_config.json").exists():
        raise InvalidInput(f"run {run.id} has no adapter at {Path(run.run_dir) / 'adapter'}; was its folder moved?")
    return run


def merged_folder(store: Store, run: Run, *, force: bool = False) -> Path:
    """The run's adapter merged into its base model, as a plain model folder (`RUN_DIR/merged`).

    An existing `merged/` is reused unless `force`. The merge runs once on the CPU in fp32, is cast
    back to the base model's own dtype, and is published atomically (tmp folder, fsync, rename), so a
    crash leaves either no folder or a whole one.
    """
    run_dir = Path(run.run_dir)
    target = run_dir / MERGED
    if (target / "config.json").exists() and not force:
        return target
    from training.models import merge_adapter, resolve_base_model

    merge_adapter(resolve_base_model(run.config.base_model), run_dir / "adapter", target)
    log_event(store, run.id, "merged", f"adapter merged into {run.config.base_model} for serving: {target}")
    return target


def prepare(store: Store, model_ref: str | None, *, merge: bool = False) -> ServedModel:
    """Resolve what to serve: `base:NAME`, a completed run (its merged folder, merged now if missing or `merge`),
    or with None the team's current model (the promoted run)."""
    if model_ref is None:
        model_ref = promoted_run_id(store)
    if model_ref.startswith(BASE_PREFIX):
        if merge:
            raise InvalidInput("--merge merges a run's adapter; a base model has none, so drop --merge")
        from training.models import resolve_base_model

        name = model_ref[len(BASE_PREFIX) :].strip()
        if not name:
            raise InvalidInput("name the base model after 'base:', e.g. base:smollm2-135m")
        base = base_card(name, resolve_base_model(name))
        return ServedModel(base.id, base.base_model_path, lambda: base)
    run = _checked_run(store, model_ref)
    folder = merged_folder(store, run, force=merge)
    lock = threading.Lock()  # the card is read on the server's worker threads; one store connection

    def run_card() -> ModelCard:
        with lock:
            return model_card(store, run.id)

    return ServedModel(run.id, str(folder), run_card)


def _pinned_manager(served: ServedModel, **options: Any) -> Any:
    """transformers' ModelManager, pinned to one folder that answers under `served.name`."""
    from transformers.cli.serving.model_manager import ModelManager

    class PinnedModelManager(ModelManager):
        # The base class names a model by its path or hub id; here the served name maps to the folder.
        @staticmethod
        def process_model_name(model_id: str) -> str:
            return model_id if model_id == served.name else ModelManager.process_model_name(model_id)

        def _load_processor(self, model_id_and_revision: str, gguf_file: str | None = None) -> Any:
            return super()._load_processor(self._folder(model_id_and_revision), gguf_file)

        def _load_model(
            self,
            model_id_and_revision: str,
            tqdm_class: type | None = None,
            progress_callback: Callable[..., Any] | None = None,
            gguf_file: str | None = None,
        ) -> Any:
            folder = self._folder(model_id_and_revision)
            return super()._load_model(folder, tqdm_class, progress_callback, gguf_file)

        def list_models(self, cache_dir: str | None = None) -> list[dict[str, Any]]:
            return [{**entry, "owned_by": "goldsmith", "card": served.card_json()} for entry in super().list_models(cache_dir)]

        @staticmethod
        def _folder(name: str) -> str:
            return served.folder if name == served.name else name

    return PinnedModelManager(force_model=served.name, **options)


def build_app(served: ServedModel) -> Any:
    """transformers' OpenAI-compatible FastAPI app for the served model, with the model-card routes added."""
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        raise InvalidInput("serving needs fastapi, openai and uvicorn; install them with `pip install fastapi openai uvicorn`")
    import torch
    from fastapi import HTTPException
    from fastapi.responses import JSONResponse
    from transformers.cli.serving.chat_completion import ChatCompletionHandler
    from transformers.cli.serving.completion import CompletionHandler
    from transformers.cli.serving.response import ResponseHandler
    from transformers.cli.serving.server import build_server
    from transformers.cli.serving.systemone import SystemOneHandler
    from transformers.cli.serving.transcription import TranscriptionHandler
    from transformers.cli.serving.utils import GenerationState

    cuda = torch.cuda.is_available()  # the house rule: CUDA -> bf16, CPU -> fp32
    manager = _pinned_manager(served, device="cuda" if cuda else "cpu", dtype="bfloat16" if cuda else "float32")
    state = GenerationState()
    app = build_server(
        manager,
        ChatCompletionHandler(model_manager=manager, generation_state=state),
        completion_handler=CompletionHandler(model_manager=manager, generation_state=state),
        response_handler=ResponseHandler(model_manager=manager, generation_state=state),
        transcription_handler=TranscriptionHandler(manager, state),
        systemone_handler=SystemOneHandler(model_manager=manager, generation_state=state),
        generation_state=state,
    )

    def entry(model_id: str) -> dict[str, Any]:
        for item in manager.list_models():
            if item["id"] == model_id:
                return item
        raise HTTPException(status_code=404, detail=f"model {model_id!r} is not served here; this server serves {served.name!r}")

    # `{model_id:path}`: a base model's name may hold a slash (base:Qwen/Qwen2.5-0.5B-Instruct).
    @app.get("/v1/models/{model_id:path}/card")
    def card_of(model_id: str) -> JSONResponse:
        return JSONResponse(entry(model_id)["card"])

    @app.get("/v1/models/{model_id:path}")
    def model_of(model_id: str) -> JSONResponse:
        return JSONResponse(entry(model_id))

    @app.get("/model-card")
    def served_card() -> JSONResponse:
        return JSONResponse(served.card_json())

    return app


def check_port(host: str, port: int) -> None:
    """Refuse a port something already listens on, before minutes go into merging and loading."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise InvalidInput(f"cannot resolve --host {host!r}: {error.strerror}") from error
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise GoldsmithError(f"cannot listen on {host}:{port} ({error.strerror}); pick another with --port") from error


def serve(
    store: Store,
    run_ref: str | None,
    host: str = "127.0.0.1",
    port: int = 8000,
    merge: bool = False,
    *,
    on_ready: Callable[[ServedModel], None] | None = None,
    log_level: str = "info",
) -> None:
    """Serve a completed run's tuned model (or `base:NAME`) until interrupted (Ctrl+C / SIGTERM).

    Args:
        store: the store the run is recorded in.
        run_ref: a run id or unique prefix, `base:NAME` for a base model, or None for the promoted run.
        host: the address to bind; 127.0.0.1 keeps the server on this machine (there is no authentication).
        port: the port to listen on.
        merge: merge the adapter into the base again even if the run already has `merged/`.
        on_ready: called once the model is loaded, just before the server starts listening.
        log_level: uvicorn's log level (its access log is at info).
    """
    check_port(host, port)
    served = prepare(store, run_ref, merge=merge)
    app = build_app(served)
    import uvicorn

    if on_ready is not None:
        on_ready(served)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level)).run()
