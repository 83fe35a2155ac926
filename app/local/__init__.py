"""Tools for people at a terminal: ``up``, ``produce``, ``listen`` and the API client."""
