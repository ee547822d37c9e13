import socket

from celery import shared_task


@shared_task(name="core.ping", acks_late=True, max_retries=0)
def ping(token: str) -> dict:
    """Answer with the token and the worker's host, so a caller can see a round trip."""
    return {"token": token, "host": socket.gethostname()}
