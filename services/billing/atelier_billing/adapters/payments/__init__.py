"""Payment provider adapters (implement atelier_ports.payments.PaymentProvider)."""
