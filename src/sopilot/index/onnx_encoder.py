"""The embedder run by ONNX Runtime: the same sentence-transformers model, exported once, with no PyTorch.

In eager PyTorch much of the time of a short text is the interpreter walking the model's modules, and a
process pays several seconds to import PyTorch and transformers before its first vector. ONNX Runtime runs
the same graph (tokens to normalised sentence embedding, pooling included) as one optimised call, on threads of
its own (``SOPILOT_QUERY_THREADS``), and the text is tokenized by the model's own fast tokenizer
(``tokenizer.json`` through the ``tokenizers`` library). The export is traced from the loaded model once,
checked against it on probe texts (one at a time and padded in a batch) and cached as a file whose name
carries a fingerprint of the model folder, so a changed model is exported again and a stale file is never
read. Once the export is cached, questions and documents alike are embedded without loading PyTorch
(docs/retrieval.md, "Latency").

With ``SOPILOT_QUERY_PRECISION=int8`` questions go through an int8 copy of that export
(``onnxruntime.quantization.quantize_dynamic``: MatMul weights QInt8 per output channel, activations quantized
at each call), about a third of the CPU of a question on a CPU with VNNI; it is checked against the fp32 export
on the probes (``MIN_INT8_AGREEMENT``) and cached beside it, under a name with onnxruntime's version (the
quantizer's output may change with it, so a new onnxruntime quantizes again). Documents always go through the
fp32 export, so the index does not change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sopilot.core.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

PROBES = (
    "hi",
    "How do I reset two-factor authentication for a reviewer who lost their phone?",
    "API returns 429 Too Many Requests on /v2/queues/export since this morning, request id 7f3a, what is the "
    "limit and when does it reset? " * 8,
    "  ¿Cómo restablezco mi contraseña? 🔑  ",
)
MIN_AGREEMENT = 0.9999  # cosine between the exported model's and the model's own embedding of every probe
MIN_INT8_AGREEMENT = 0.98  # cosine between the int8 and the fp32 export's embedding of every probe


class OnnxEncoder:
    """Embeds texts with an ONNX export of a sentence-transformers model and its fast tokenizer (thread-safe)."""

    def __init__(self, graph: bytes | Path, model_path: Path, max_tokens: int, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        # Threads that wait by spinning slow everything else on a small machine; let them sleep.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.graph = graph  # what the session was made from, for an int8 copy of it
        source = graph if isinstance(graph, bytes) else str(graph)
        self._session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        tokenizer_file = model_path / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ConfigError(f"{model_path} has no tokenizer.json (a fast tokenizer) for ONNX Runtime")
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.max_tokens = max_tokens
        self._tokenizer.enable_truncation(max_length=max_tokens)
        pad = _pad_token(model_path)
        pad_id = self._tokenizer.token_to_id(pad)
        self._tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0, pad_token=pad)
        self._lower = bool(_read_json(model_path / "sentence_bert_config.json").get("do_lower_case"))
        st_config = _read_json(model_path / "config_sentence_transformers.json")
        self._prompts: dict[str, str] = st_config.get("prompts") or {}

    def prompt(self, kind: str) -> str:
        """The text the model puts before a ``kind`` ("query", "document") input, as sentence-transformers does."""
        return str(self._prompts.get(kind, ""))

    def encode(self, texts: Sequence[str], kind: str = "query") -> np.ndarray:
        """Unit vectors of ``texts``, one row each, padded to the longest text of the call."""
        prompt = self.prompt(kind)
        prepared = [prompt + str(t).strip() for t in texts]
        if self._lower:
            prepared = [t.lower() for t in prepared]
        encodings = self._tokenizer.encode_batch(prepared)
        arrays = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        vectors = self._session.run(None, {name: arrays[name] for name in self._inputs})[0]
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return np.asarray(vectors / norms, dtype=np.float32)


def open_onnx_encoder(
    model_path: Path,
    cache_dir: Path | None,
    load_model: Callable[[], SentenceTransformer],
    max_tokens: int,
    threads: int = 1,
) -> OnnxEncoder:
    """The cached export for this model folder; when missing, made from ``load_model()``, checked and cached
    (kept in memory only when the cache cannot be written).

    Raises ConfigError when the model cannot be exported or its export does not agree with it.
    """
    cached = _cache_file(model_path, cache_dir, "")
    if cached is not None and cached.is_file():
        try:
            return OnnxEncoder(cached, model_path, max_tokens, threads)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: export again over it
            log.warning("the cached ONNX export %s could not be loaded (%s); exporting it again", cached, exc)
    model = load_model()
    graph = export(model)
    encoder = OnnxEncoder(graph, model_path, max_tokens, threads)
    check_agreement(model, encoder)
    return _kept(encoder, graph, cached, "ONNX export")


def open_int8_encoder(model_path: Path, cache_dir: Path | None, fp32: OnnxEncoder, threads: int = 1) -> OnnxEncoder:
    """The int8 copy of ``fp32`` (the model folder's export), cached beside it; when missing, quantized,
    checked against ``fp32`` on the probes and cached (kept in memory only when the cache cannot be written).

    Raises ConfigError when the copy cannot be made or disagrees with the fp32 export.
    """
    cached = _cache_file(model_path, cache_dir, f"-int8-ort{_version('onnxruntime')}")
    max_tokens = fp32.max_tokens
    if cached is not None and cached.is_file():
        try:
            return OnnxEncoder(cached, model_path, max_tokens, threads)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: quantize again over it
            log.warning("the cached int8 export %s could not be loaded (%s); quantizing it again", cached, exc)
    graph = quantize(fp32.graph)
    encoder = OnnxEncoder(graph, model_path, max_tokens, threads)
    for probe in PROBES:
        agreement = float(np.dot(encoder.encode([probe])[0], fp32.encode([probe])[0]))
        if agreement < MIN_INT8_AGREEMENT:
            raise ConfigError(
                f"the int8 copy of the question model disagrees with it (cosine {agreement:.4f} on {probe[:30]!r}); "
                "set SOPILOT_QUERY_PRECISION=fp32"
            )
    kept = _kept(encoder, graph, cached, "int8 export")
    if cached is not None and kept.graph == cached:
        _drop_other_copies(cached)
    return kept


def _drop_other_copies(cached: Path) -> None:
    """Remove int8 copies of the same export made by another onnxruntime: nothing reads them again."""
    stem = cached.name.split("-int8", 1)[0]
    for other in cached.parent.glob(f"{stem}-int8*.onnx"):
        if other != cached:
            try:
                other.unlink()
                log.info("removed %s, the int8 copy another onnxruntime made", other.name)
            except OSError:
                pass


def quantize(graph: bytes | Path) -> bytes:
    """An int8 copy of an fp32 ONNX graph: MatMul weights QInt8 per channel, activations quantized at each call."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="sopilot-int8-") as folder:
        target = Path(folder) / "model-int8.onnx"
        model = onnx.load_from_string(graph) if isinstance(graph, bytes) else onnx.load(str(graph))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # Per output channel, matrix products only (the embedding table stays fp32): per-tensor
                # scales moved question vectors to cosine 0.94-0.96 of the fp32 ones, these to 0.985-0.995.
                quantize_dynamic(
                    model, target, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
                )
        except Exception as exc:  # noqa: BLE001 - any quantizer failure leaves the question model in fp32
            raise ConfigError(
                f"the question model could not be quantized to int8 ({type(exc).__name__}: {exc}); "
                "set SOPILOT_QUERY_PRECISION=fp32"
            ) from exc
        return target.read_bytes()


def _cache_file(model_path: Path, cache_dir: Path | None, variant: str) -> Path | None:
    return cache_dir / f"{_slug(model_path)}-{fingerprint(model_path)}{variant}.onnx" if cache_dir else None


def _kept(encoder: OnnxEncoder, graph: bytes, cached: Path | None, what: str) -> OnnxEncoder:
    """``encoder``, its ``graph`` written to ``cached`` when it can be; then the encoder reads that file."""
    if cached is None:
        return encoder
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(graph)
        partial.replace(cached)
        log.info("kept the embedder's %s in %s", what, cached)
    except OSError as exc:  # a read-only index folder: use the export, make it again next time
        log.warning(
            "the embedder's %s could not be kept in %s (%s); it is made at every start",
            what,
            cached.parent,
            exc,
        )
        return encoder
    encoder.graph = cached  # the bytes need not stay in memory
    return encoder


def export(model: SentenceTransformer) -> bytes:
    """Trace the whole model (transformer, pooling, any dense and normalise layers) to an ONNX graph."""
    import torch

    preprocess = getattr(model, "preprocess", None) or model.tokenize
    features = dict(preprocess([PROBES[1], PROBES[0]]))
    names = [name for name, value in features.items() if isinstance(value, torch.Tensor)]

    class Whole(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "tokens"} for name in names}
    folder = tempfile.TemporaryDirectory(prefix="sopilot-onnx-")
    target = Path(folder.name) / "model.onnx"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings on shape branches: the agreement check decides
            torch.onnx.export(
                Whole().eval(),
                tuple(features[name] for name in names),
                target,
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
    except Exception as exc:  # noqa: BLE001 - any tracing failure means this model stays on PyTorch
        raise ConfigError(
            f"the embedder could not be exported for ONNX Runtime ({type(exc).__name__}: {exc}); "
            "set SOPILOT_RUNTIME=torch"
        ) from exc
    else:
        return target.read_bytes()
    finally:
        folder.cleanup()


def check_agreement(model: SentenceTransformer, encoder: OnnxEncoder) -> None:
    """Refuse an export whose embeddings differ from the model's own on the probes: each question alone, and
    the probes as documents in one padded batch."""
    expected_queries = [
        model.encode_query(p, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False) for p in PROBES
    ]
    got_queries = [encoder.encode([p], "query")[0] for p in PROBES]
    expected_docs = model.encode_document(
        list(PROBES), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    got_docs = encoder.encode(PROBES, "document")
    pairs = [*zip(got_queries, expected_queries, strict=True), *zip(got_docs, expected_docs, strict=True)]
    for probe, (got, expected) in zip([*PROBES, *PROBES], pairs, strict=True):
        agreement = float(np.dot(got, np.asarray(expected, dtype=np.float32)))
        if agreement < MIN_AGREEMENT:
            raise ConfigError(
                f"the ONNX export of the embedder disagrees with it (cosine {agreement:.5f} on {probe[:30]!r}); "
                "set SOPILOT_RUNTIME=torch"
            )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:  # pragma: no cover - both are dependencies
        return "unknown"


def fingerprint(model_path: Path) -> str:
    """Names, sizes and modification times of the model folder's files, with the exporter's version."""
    exporter = _version("torch")
    digest = hashlib.sha256(f"torch {exporter}".encode())
    for file in sorted(p for p in model_path.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(model_path)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _slug(model_path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model_path.parent.name + "-" + model_path.name).strip("-")[:60]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pad_token(model_path: Path) -> str:
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        pad = _read_json(model_path / name).get("pad_token")
        if isinstance(pad, dict):
            pad = pad.get("content")
        if isinstance(pad, str) and pad:
            return pad
    return "[PAD]"
