"""Interaction capture for fine-tuning: opted-in request/response pairs, redacted, in rotating JSONL files.

    gateway.capture.interactions   InteractionCapture: wraps replies, buffers, writes in the background
                                   (streams are folded by gateway.upstream.stream_folding)
    gateway.capture.redaction      PII redaction (emails, phone numbers, configured regexes)
    gateway.capture.store          the append-only store: rotation, size cap, reading back
    gateway.capture.dataset        fine-tuning sets (chat, preference) and their stats

Kept import-light on purpose (nothing is imported here): settings may import `redaction` lazily.
"""
