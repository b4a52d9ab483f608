"""Signals sent by the services (never by Model.save()).

Receivers get keyword arguments only; ``sender`` is the model class involved.
"""

from django.dispatch import Signal

#: A message row was committed and handed to the queue. Args: message.
message_queued = Signal()

#: A message changed status. Args: message, old_status, new_status.
delivery_status_changed = Signal()

#: A backend is about to hand a message to its provider. sender: the backend
#: class. Args: backend, message (an OutgoingMessage). Raise
#: ``sms_service.exceptions.SendCancelled`` to stop the send: the message becomes
#: failed and is not billed. Any other exception is a temporary failure (retried).
pre_send = Signal()

#: The provider took a message. sender: the backend class. Args: backend, message
#: (an OutgoingMessage), result (a SendResult). Receiver errors are logged only.
post_send = Signal()

#: A verification code was issued and its message queued. Args: app, phone, purpose, message.
code_sent = Signal()

#: A code was verified. Args: app, phone, purpose.
code_verified = Signal()

#: A wrong code was submitted (also at a number without a live code: attempts
#: then counts those). Args: app, phone, purpose, attempts, dead.
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

# --- Phone users (sender: AppUser) ----------------------------------------------------
# The API's logins also send Django's own ``django.contrib.auth.signals.user_logged_in``
# (with the request), so receivers such as update_last_login run for them too.

#: A member was created. Args: app, member, method ("password", "sms_code" or
#: "import").
member_signed_up = Signal()

#: A member logged in and got a session. Args: app, member, method ("password" or
#: "sms_code").
member_logged_in = Signal()

#: A login failed. Args: app, account (what the client sent, e.g. "phone:+86…"),
#: member (None when no member matched), failures (in the current window).
member_login_failed = Signal()

#: Too many failed logins locked an account. Args: app, account, member (or None),
#: locked_until.
member_locked_out = Signal()

#: A member's phone number was verified. Args: app, member, phone.
member_phone_verified = Signal()

#: A member's phone number changed. Args: app, member, old_phone, new_phone,
#: verified.
member_phone_changed = Signal()

#: A member's password changed (update, reset by SMS code). Args: app, member, method
#: ("update", "reset").
member_password_changed = Signal()

#: A member's sessions were ended. Args: app, member, count.
member_sessions_ended = Signal()

#: The app's balance fell below its alert threshold (once per crossing, after
#: commit). sender: App. Args: app, balance, threshold.
balance_low = Signal()
# --- Routing and pumping defence ------------------------------------------------------

#: A backend's circuit breaker opened or closed. sender: None. Args: alias, state
#: ("open" or "closed").
circuit_changed = Signal()

#: The pumping defence started holding back sends to a number range or country
#: of an app. sender: PumpingBlock. Args: block, app.
pumping_blocked = Signal()

#: An operator lifted a pumping block. sender: PumpingBlock. Args: block, app, by.
pumping_block_lifted = Signal()
