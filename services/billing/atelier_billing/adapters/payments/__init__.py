"""Payment provider adapters (implement ``application.ports.payments.PaymentProvider``)."""
