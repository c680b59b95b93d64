"""Integrations of tiercache with pipeline frameworks."""
