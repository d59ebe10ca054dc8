"""Inference client: builds requests, talks to the wrapper (or an endpoint), journals answers."""
