"""The HTTP service: authentication, sessions and agency-scoped, audited access to reports (FastAPI)."""
