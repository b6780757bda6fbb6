"""Payment notifications (F11) and what each kind of payment event does.

``notifications`` verifies a provider's notification and applies its event once (deduplicated
by the provider's event id), dispatching through a table (``notifications.event_handlers``):
one handler per ``PaymentEventKind`` (``order_events``, ``renewals``, ``refunds``). An event
handler works inside the unit of work that records the event; ``customers`` alone runs outside
one (it may call the provider).
"""
