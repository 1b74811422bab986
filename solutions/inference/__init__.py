"""Efficient LLM inference (hw6): a small GPT (`model`, given), KV cache, batched
generation, paged KV memory, continuous batching and speculative decoding."""
