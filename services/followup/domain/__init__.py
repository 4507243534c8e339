"""Pure follow-up logic: no storage, no transport, no clock reads (``now`` is always passed in).

``projection`` applies review events to follow-up's own view of a review, ``timers`` plans the timers that view
calls for under the ``policy``, and ``backlog`` shapes the open and overdue counts the gauges show.
"""
