"""Drafting: replies an agent reviews, written from ranked passages with a citation on every claim."""
