"""Admin for phone users: members per app, their sessions, login lockouts.

Usernames, emails and numbers are read-only here: they change through the API
(``PUT /1.1/users/<objectId>``, the number-change flow), which keeps the host
user's name and the verified flags consistent. The host user itself is edited in
Django's own user admin (the link on each member).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import AppUser, LoginLockout, UserSession
from ..services import users
from .localtime import LocalTimesMixin


class UserSessionInline(LocalTimesMixin, admin.TabularInline):
    model = UserSession
    extra = 0
    can_delete = False
    fields = readonly_fields = ("created_at", "client_ip", "revoked_at")
    ordering = ["revoked_at", "-created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AppUser)
class AppUserAdmin(LocalTimesMixin, admin.ModelAdmin):
    list_display = ["username", "app", "phone", "phone_verified", "email", "live_sessions",
                    "created_at"]
    list_filter = ["app", "phone_verified", "email_verified", "created_at"]
    search_fields = ["username", "phone", "email", "object_id"]
    list_select_related = ["app"]
    date_hierarchy = "created_at"
    readonly_fields = ["app", "object_id", "host_user", "username", "email", "phone",
                       "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["app", "object_id", "host_user", "username"]}),
        (_("Phone and email"), {"fields": ["phone", "phone_verified", "email",
                                           "email_verified"]}),
        (_("Other fields"), {"fields": ["extra"]}),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [UserSessionInline]
    actions = ["end_sessions"]

    def has_add_permission(self, request) -> bool:
        return False  # members are created by sign-up or import

    def delete_model(self, request, obj: AppUser) -> None:
        users.delete_member(member=obj)

    def delete_queryset(self, request, queryset) -> None:
        for member in queryset.select_related("user"):
            users.delete_member(member=member)

    @admin.display(description=_("host user"))
    def host_user(self, obj: AppUser) -> str:
        user = obj.user
        opts = user._meta
        try:
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[user.pk])
        except NoReverseMatch:
            return str(user)
        return format_html('<a href="{}">{}</a>', url, user)

    def get_queryset(self, request):
        # The live sessions are counted with the rows, not a query per member.
        return super().get_queryset(request).annotate(
            live_session_count=Count("sessions", filter=Q(sessions__revoked_at__isnull=True)))

    @admin.display(description=_("live sessions"), ordering="live_session_count")
    def live_sessions(self, obj: AppUser) -> int:
        count = getattr(obj, "live_session_count", None)
        if count is None:
            return obj.sessions.filter(revoked_at__isnull=True).count()
        return count

    @admin.action(description=_("End all sessions of the selected members"),
                  permissions=["change"])
    def end_sessions(self, request, queryset) -> None:
        for member in queryset:
            users.end_sessions(member=member)
        self.message_user(request, _("Sessions ended."), messages.SUCCESS)


@admin.register(UserSession)
class UserSessionAdmin(LocalTimesMixin, admin.ModelAdmin):
    list_display = ["member", "app", "created_at", "client_ip", "revoked_at"]
    list_filter = ["app", ("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["member__username", "member__phone", "member__object_id"]
    list_select_related = ["member", "app"]
    readonly_fields = ["app", "member", "created_at", "client_ip", "revoked_at"]
    exclude = ["token_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description=_("Revoke the selected sessions"), permissions=["change"])
    def revoke(self, request, queryset) -> None:
        count = users.revoke_sessions(sessions=queryset)
        self.message_user(request, ngettext("%(n)d session revoked.", "%(n)d sessions revoked.",
                                            count) % {"n": count}, messages.SUCCESS)


@admin.register(LoginLockout)
class LoginLockoutAdmin(LocalTimesMixin, admin.ModelAdmin):
    list_display = ["account", "app", "member", "failures", "last_failure_at", "locked_until",
                    "is_locked"]
    list_filter = ["app"]
    search_fields = ["account", "member__username", "member__phone"]
    list_select_related = ["app", "member"]
    readonly_fields = ["app", "account", "member", "failures", "window_started_at",
                       "last_failure_at", "locked_until"]
    actions = ["lift"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description=_("locked now"), boolean=True)
    def is_locked(self, obj: LoginLockout) -> bool:
        return bool(obj.locked_until and obj.locked_until > timezone.now())

    @admin.action(description=_("Lift the selected lockouts"), permissions=["delete"])
    def lift(self, request, queryset) -> None:
        count = users.unlock(lockouts=queryset)
        self.message_user(request, ngettext("%(n)d lockout lifted.", "%(n)d lockouts lifted.",
                                            count) % {"n": count}, messages.SUCCESS)
