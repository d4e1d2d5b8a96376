"""The routing suite's workloads: shared system prompts (uniform, skewed, long outputs), multi-turn
conversations (with and without a user id), mixed long and short prompts, and a burst of new prefixes."""

from benchmarks.routing.workloads.burst import BurstSpec, burst
from benchmarks.routing.workloads.catalog import REPLICATED, WORKLOADS, build, default_requests
from benchmarks.routing.workloads.conversations import ConversationSpec, conversations
from benchmarks.routing.workloads.mixed import MixedSpec, mixed
from benchmarks.routing.workloads.requests import CHARS_PER_TOKEN, ChatRequest, Workload
from benchmarks.routing.workloads.shared_prefix import WorkloadSpec, long_outputs, skewed, uniform

__all__ = [
    "CHARS_PER_TOKEN", "REPLICATED", "WORKLOADS", "BurstSpec", "ChatRequest", "ConversationSpec", "MixedSpec",
    "Workload", "WorkloadSpec", "build", "burst", "conversations", "default_requests", "long_outputs", "mixed",
    "skewed", "uniform",
]  # fmt: skip
