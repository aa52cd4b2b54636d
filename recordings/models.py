"""Recording models arrive with the recording pipeline (chunked rrweb ingest and replay)."""
