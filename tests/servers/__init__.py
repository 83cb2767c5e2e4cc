"""Local servers that stand in for the network in tests and benchmarks."""

from .openai_server import FakeOpenAIServer, Reply

__all__ = ["FakeOpenAIServer", "Reply"]
