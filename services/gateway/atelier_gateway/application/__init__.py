"""Gateway use cases (sign-up, log-in, phone + SMS log-in, token rotation, profile, idempotency),
the ports they and the HTTP routes need (``ports``: unit of work, repositories, password hasher,
token issuer, ``Sms``, ``PhoneNumbers``, ``OneTimeCodes``, ``BillingAccounts``,
``BillingGateway``, ``TasksGateway``) and the plain DTOs those ports take and return (``calls``,
``billing_views``, ``task_views``).

Plain Python; may import ``atelier_gateway.domain`` and ``atelier_ports`` only.
"""
