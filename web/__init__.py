"""The chat service: FastAPI app with native SSE chat, an OpenAI-compatible endpoint, jobs and artifacts."""
