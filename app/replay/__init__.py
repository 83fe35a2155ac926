"""Replay and backfill: re-read the events topic for one webhook (see ``app.replay.jobs``)."""
