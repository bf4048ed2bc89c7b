"""The seam to real language models: llama-index's ``OpenAILike`` (any OpenAI-compatible server: vLLM,
llama.cpp server, Ollama, hosted APIs) or ``LlamaCPP`` (a local GGUF file), built from ``Settings``.

Both are optional extras, imported only here and only when a language model is asked for, so the default
offline product never needs them. llama-index's global ``Settings.llm`` (a cloud model by default) is never
touched: the model built here is passed to whoever needs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from sopilot.core.errors import ConfigError
from sopilot.core.settings import Settings

if TYPE_CHECKING:
    from llama_index.core.llms import LLM


def load_llm(settings: Settings) -> LLM:
    """The language model the settings name; a clear error when it is not configured or not installed."""
    if settings.llm_backend == "llama-cpp":
        return _llama_cpp(settings)
    return _openai_like(settings)


def describe_llm(settings: Settings) -> str:
    """A short name for provenance: backend and model."""
    model = Path(settings.llm_model).name if settings.llm_backend == "llama-cpp" else settings.llm_model
    return f"{settings.llm_backend}:{model or 'default'}"


def _openai_like(settings: Settings) -> LLM:
    if not settings.llm_url:
        raise ConfigError(
            "the language-model drafter needs a server: set SOPILOT_LLM_URL to an OpenAI-compatible base URL "
            "(for example http://127.0.0.1:8080/v1) and SOPILOT_LLM_MODEL to its model name, "
            "or use the extractive drafter"
        )
    try:
        from llama_index.llms.openai_like import OpenAILike
    except ImportError as exc:
        raise ConfigError("the language-model drafter needs the 'llm' extra: pip install 'sopilot[llm]'") from exc
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "not-needed"
    return OpenAILike(
        model=settings.llm_model or "default",
        api_base=settings.llm_url,
        api_key=key,
        is_chat_model=True,
        is_function_calling_model=False,
        context_window=settings.llm_context_window,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        timeout=settings.llm_timeout,
        max_retries=0,
    )


def usable_cores() -> int:
    """The cores this process may run on (llama.cpp's own default is half the machine's: one core of two)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _llama_cpp(settings: Settings) -> LLM:
    path = Path(settings.llm_model).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"SOPILOT_LLM_MODEL must name a GGUF model file for the llama-cpp backend; {str(path)!r} is not a file"
        )
    try:
        from llama_index.llms.llama_cpp import LlamaCPP
    except ImportError as exc:
        raise ConfigError(
            "the llama-cpp backend needs the 'llamacpp' extra: "
            "CMAKE_ARGS=-DGGML_NATIVE=OFF pip install 'sopilot[llamacpp]'"
        ) from exc
    return LlamaCPP(
        model_path=str(path),
        temperature=settings.llm_temperature,
        max_new_tokens=settings.llm_max_tokens,
        context_window=settings.llm_context_window,
        model_kwargs={"n_gpu_layers": 0, "n_threads": settings.llm_threads or usable_cores()},
        verbose=False,
    )
