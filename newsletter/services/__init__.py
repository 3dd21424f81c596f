"""Writes of the newsletter, one module per job; callers import from the module that owns one.

- ``planning``: who gets which papers (candidates, already-sent, selections, delivery rows);
- ``issues``: creating, starting, cancelling and finishing an issue;
- ``sending``: claiming, sending and recording a chunk; the sweeper and retries;
- ``tracking``: provider events -> delivery status and suppression;
- ``previews``: what one subscriber would get, and sending that to an editor.

Reads are in ``newsletter.selectors``; composing bodies in ``newsletter.composition``.
"""
