"""Builders: turn corpora into text sets and models into log-likelihood rows of schema v1."""
