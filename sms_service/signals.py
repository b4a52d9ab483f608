"""Signals sent by the services (never by Model.save()).

Receivers get keyword arguments only; ``sender`` is the model class involved.
"""

from django.dispatch import Signal

#: A message row was committed and handed to the queue. Args: message.
message_queued = Signal()

#: A message changed status. Args: message, old_status, new_status.
delivery_status_changed = Signal()

#: A verification code was issued and its message queued. Args: app, phone, purpose, message.
code_sent = Signal()

#: A code was verified. Args: app, phone, purpose.
code_verified = Signal()

#: A wrong code was submitted. Args: app, phone, purpose, attempts, dead.
code_rejected = Signal()

#: A signature or template version was submitted for review (new, edited or
#: resubmitted). sender: Signature or TemplateVersion. Args: item, app.
content_submitted = Signal()

#: A reviewer approved a signature or template version. Args: item, app, reviewer
#: (None for system approvals such as the demo seed).
content_approved = Signal()

#: A reviewer rejected a signature or template version. Args: item, app, reviewer,
#: reason.
content_rejected = Signal()
