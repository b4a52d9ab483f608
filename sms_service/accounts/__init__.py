"""Bundled account pages for end users: sign up, log in, verify, reset and change
a number by SMS (opt-in: include ``sms_service.accounts.urls``)."""
