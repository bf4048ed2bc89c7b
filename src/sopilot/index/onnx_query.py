"""Questions embedded by ONNX Runtime: the same sentence-transformers model, exported once, about twice as fast.

A search embeds one short question. In eager PyTorch much of that time is the interpreter walking the
model's modules; ONNX Runtime runs the same graph (tokens to normalised sentence embedding, pooling
included) as one optimised call, on threads of its own (``SOPILOT_QUERY_THREADS``). The export is traced
from the loaded model, checked against it on probe questions and cached as a file whose name carries a
fingerprint of the model folder, so a changed model is exported again and a stale file is never read
(docs/retrieval.md, "Latency").
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import warnings
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
)
MIN_AGREEMENT = 0.9999  # cosine between the exported model's and the model's own embedding of every probe


class OnnxQueryEncoder:
    """Embeds one question with an ONNX export of a sentence-transformers model (thread-safe)."""

    def __init__(self, model: SentenceTransformer, graph: bytes | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        # Threads that wait by spinning slow everything else on a small machine; let them sleep.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = graph if isinstance(graph, bytes) else str(graph)
        self._session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._model = model
        self._prompt = (getattr(model, "prompts", None) or {}).get("query", "")

    def encode(self, text: str) -> np.ndarray:
        features = _tokenize(self._model, [self._prompt + text])
        feed = {name: features[name].numpy() for name in self._inputs}
        vector = self._session.run(None, feed)[0][0]
        return np.asarray(vector / max(float(np.linalg.norm(vector)), 1e-12), dtype=np.float32)


def open_onnx_encoder(
    model: SentenceTransformer, model_path: Path, cache_dir: Path | None, threads: int = 1
) -> OnnxQueryEncoder:
    """The cached export for this model folder, made (and checked) when missing; in memory without a cache.

    Raises ConfigError when the model cannot be exported or its export does not agree with it.
    """
    cached = cache_dir / f"{_slug(model_path)}-{fingerprint(model_path)}.onnx" if cache_dir else None
    if cached is not None and cached.is_file():
        try:
            return OnnxQueryEncoder(model, cached, threads)
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: export again over it
            log.warning("the cached query encoder %s could not be loaded (%s); exporting it again", cached, exc)
    graph = export(model)
    encoder = OnnxQueryEncoder(model, graph, threads)
    check_agreement(model, encoder)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(f".{os.getpid()}.part")
            partial.write_bytes(graph)
            partial.replace(cached)
            log.info("exported the query encoder to %s", cached)
        except OSError as exc:  # a read-only index folder: use the export, make it again next time
            log.warning(
                "the query encoder's export could not be kept in %s (%s); it is made at every start", cached.parent, exc
            )
    return encoder


def export(model: SentenceTransformer) -> bytes:
    """Trace the whole model (transformer, pooling, any dense and normalise layers) to an ONNX graph."""
    import torch

    features = _tokenize(model, [PROBES[1]])
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
            "set SOPILOT_QUERY_RUNTIME=torch"
        ) from exc
    else:
        return target.read_bytes()
    finally:
        folder.cleanup()


def check_agreement(model: SentenceTransformer, encoder: OnnxQueryEncoder) -> None:
    """Refuse an export whose embeddings differ from the model's own on the probe questions."""
    for probe in PROBES:
        expected = model.encode_query(probe, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        agreement = float(np.dot(encoder.encode(probe), np.asarray(expected, dtype=np.float32)))
        if agreement < MIN_AGREEMENT:
            raise ConfigError(
                f"the ONNX export of the embedder disagrees with it (cosine {agreement:.5f} on {probe[:30]!r}); "
                "set SOPILOT_QUERY_RUNTIME=torch"
            )


def fingerprint(model_path: Path) -> str:
    """Names, sizes and modification times of the model folder's files, with the exporter's version."""
    import torch

    digest = hashlib.sha256(f"torch {torch.__version__}".encode())
    for file in sorted(p for p in model_path.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(model_path)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _slug(model_path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model_path.parent.name + "-" + model_path.name).strip("-")[:60]


def _tokenize(model: SentenceTransformer, texts: list[str]) -> dict[str, Any]:
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    return dict(preprocess(texts))
