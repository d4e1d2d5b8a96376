"""Interaction capture for fine-tuning: opted-in request/response pairs, redacted, in rotating JSONL files.

    gateway.capture.config         CaptureConfig and the opt-in decision (key, routing rule, model)
    gateway.capture.interactions   InteractionCapture: wraps replies (whole or streamed), takes feedback
    gateway.capture.record_queue   the background writer: bounded queue, batches folded (streams, by
                                   gateway.upstream.stream_folding), redacted and written in a thread
    gateway.capture.redaction      PII redaction (emails, phone numbers, configured regexes)
    gateway.capture.store          the append-only store: rotation, size cap, reading back
    gateway.capture.dataset        fine-tuning sets (chat, preference) and their stats

Kept import-light on purpose (nothing is imported here): settings may import `redaction` lazily.
"""
