"""Fakes of outside services that speak their real HTTP APIs on 127.0.0.1."""
