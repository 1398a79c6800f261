"""AI text through the OpenAI API: a nice-to-have the pages work without."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import openai

from brownout import FeatureDisabledError
from brownout.middleware import BrownoutState

logger = logging.getLogger("retail.assistant")


@dataclass(frozen=True)
class AIText:
    """What a response says about its AI part: the text, or why there is none."""

    text: str | None
    status: str
    """``ok``, ``off`` (the level turned ``ai`` off) or ``unavailable`` (the API failed
    or its breaker is open)."""

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "status": self.status}


OFF = AIText(None, "off")
UNAVAILABLE = AIText(None, "unavailable")


class Assistant:
    def __init__(self, client: openai.OpenAI, model: str) -> None:
        self.client = client
        self.model = model

    def describe(self, product: dict[str, Any], state: BrownoutState | None) -> AIText:
        prompt = (
            f"Write one sentence selling a {product['name']} ({product['category']}), "
            f"price {product['price_cents'] / 100:.2f}."
        )
        return self._complete(prompt, state)

    def summarise(self, names: Sequence[str], state: BrownoutState | None) -> AIText:
        prompt = "Summarise these search results in one sentence: " + ", ".join(names[:20])
        return self._complete(prompt, state)

    def _complete(self, prompt: str, state: BrownoutState | None) -> AIText:
        if state is not None and not state.enabled("ai"):
            return OFF
        try:
            completion = self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=60,
            )
        except FeatureDisabledError:
            return OFF
        except openai.OpenAIError as error:
            # Rate limits, timeouts, 5xx and an open breaker alike: the page goes out
            # without the AI part. The breaker has already counted the failure.
            logger.debug("AI text skipped: %s", type(error).__name__)
            return UNAVAILABLE
        return AIText(completion.choices[0].message.content, "ok")
