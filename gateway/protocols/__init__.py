"""Worker protocols: what workers speak (OpenAI-compatible/vLLM, Ollama native). One module per protocol."""
