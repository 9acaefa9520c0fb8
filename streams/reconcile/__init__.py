"""Reconciliation: what was asked (requests), what we said (outcomes, status changes,
dead letters) and what each provider holds, joined per link over a time window.

``window`` reads a topic's records between two times (offsets found by timestamp);
``facts`` turns records and provider answers into facts about one link (pure);
``join`` spills facts to an on-disk SQLite file and hands them back one link at a time,
so memory stays bounded however many links a window holds; ``classify`` decides each
link's classes (pure, the model is ``lifecycle.decide``); ``holdings`` asks the
providers; ``report`` writes the verdict line, JSON, CSV and HTML; ``repair`` re-drives
lost and orphaned links through the pipeline; ``run`` ties them together for
``python -m streams reconcile``.
"""
