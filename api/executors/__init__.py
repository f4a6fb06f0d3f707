"""Where jobs run: `local` (processes beside the API) or `celery` (workers via Redis)."""
