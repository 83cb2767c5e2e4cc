"""Any provider litellm knows, through `litellm.acompletion`; requests and errors as the OpenAI wire format says."""

from __future__ import annotations

from .base import Completion, Sampling, Structured, TransientLLMError
from .structured import Fallback, asks_for_structure, with_fallback
from .wire import raise_mapped, request_body


class LiteLLM:
    """Any provider litellm knows ("anthropic/claude-...", "gemini/...", "openai/..."), through litellm.acompletion."""

    hedge = True  # a straggling request may be raced by a second one (LLMClient)

    def __init__(self, model: str, *, api_base: str | None = None, api_key: str | None = None, **options) -> None:
        self.model, self.api_base, self._api_key, self._options = model, api_base, api_key, options
        self.name = f"litellm:{model}"  # never the api_base: ids must not depend on an address
        self._fallback = Fallback(self.name)

    async def complete(
        self,
        messages: list[dict],
        sampling: Sampling,
        *,
        json_schema: dict | None = None,
        grammar: str | None = None,
        structured: Structured = "auto",
        timeout: float | None = None,
    ) -> Completion:
        """One chat completion; in auto mode, asked again in words if the provider refuses structured outputs."""

        def call(mode: Structured):
            return self._complete(request_body(self.model, messages, sampling, json_schema, grammar, mode), timeout)

        return await with_fallback(self._fallback, structured, call)

    async def _complete(self, body: dict, timeout: float | None) -> Completion:
        import litellm

        litellm.suppress_debug_info = True  # else every exception prints a "Give Feedback" banner to stdout
        extra = {"api_base": self.api_base, "api_key": self._api_key, **self._options}
        try:
            # drop_params: providers without seed or response_format get the request without them (chat_json still
            # validates); retries are LLMClient's, so litellm's own are off
            response = await litellm.acompletion(
                **body,
                **{k: v for k, v in extra.items() if v is not None},
                timeout=timeout,
                num_retries=0,
                max_retries=0,
                drop_params=True,
            )
        except Exception as e:
            raise_mapped(e)
        try:
            completion = self._completion(response, litellm)
        except (AttributeError, IndexError, KeyError, TypeError) as e:  # a body without a usable choice
            raise TransientLLMError(f"malformed completion: {type(e).__name__}: {e}") from e
        # drop_params removes a response_format the provider cannot take: then nothing held the reply to its schema
        completion.constrained = asks_for_structure(body) and _supports_schema(self.model)
        return completion

    def _completion(self, response, litellm) -> Completion:
        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        try:
            cost = litellm.completion_cost(completion_response=response) or 0.0
        except Exception:  # litellm raises for models missing from its map: unknown price, not a failed call
            cost = 0.0
        return Completion(
            text=choice.message.content or "",
            reasoning=getattr(choice.message, "reasoning_content", None) or "",
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            cost=float(cost),
            model=response.model or "",
            finish_reason=choice.finish_reason or "",
        )


def _supports_schema(model: str) -> bool:
    """Whether litellm's model map says the provider enforces a response schema (False when it does not know)."""
    import litellm

    try:
        return bool(litellm.supports_response_schema(model=model))
    except Exception:  # models missing from the map
        return False
