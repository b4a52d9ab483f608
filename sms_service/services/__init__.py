"""All business rules. Views, tasks, admin and commands call these modules:

* :mod:`.sending` – requestSmsCode (codes and template messages);
* :mod:`.codes` – issuing and checking verification codes;
* :mod:`.outbox` – the message lifecycle and delivery;
* :mod:`.ratelimit` – sending limits;
* :mod:`.content` – signatures, templates and rendering;
* :mod:`.billing` – prices, holds and the ledger;
* :mod:`.tenants` – creating and updating apps (the tenants).
"""
