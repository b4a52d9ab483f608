from ..delivery import FINAL_STATUSES, DeliveryStatus
from .app import App, FixedCodeNumber, KeyRotation
from .billing import LedgerEntry, LedgerKind, Price, UnmatchedReceipt
from .captcha import CaptchaChallenge, CaptchaValidateToken
from .codes import CodePurpose, CodeStatus, VerificationCode
from .content import (
    ProviderTemplate,
    ReviewStatus,
    Signature,
    Template,
    TemplateVersion,
)
from .messages import (
    Channel,
    Message,
    MessageEvent,
    MessageKind,
    MessageStatus,
    mask_phone,
)
from .pumping import PumpingBlock
from .users import AppUser, LoginLockout, UserSession
from .webhooks import Webhook, WebhookDelivery, WebhookDeliveryStatus, WebhookEvent

__all__ = [
    "App",
    "AppUser",
    "CaptchaChallenge",
    "CaptchaValidateToken",
    "Channel",
    "CodePurpose",
    "CodeStatus",
    "DeliveryStatus",
    "FixedCodeNumber",
    "FINAL_STATUSES",
    "KeyRotation",
    "LedgerEntry",
    "LedgerKind",
    "LoginLockout",
    "Message",
    "MessageEvent",
    "MessageKind",
    "MessageStatus",
    "Price",
    "ProviderTemplate",
    "PumpingBlock",
    "ReviewStatus",
    "Signature",
    "Template",
    "TemplateVersion",
    "UnmatchedReceipt",
    "UserSession",
    "VerificationCode",
    "Webhook",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WebhookEvent",
    "mask_phone",
]
