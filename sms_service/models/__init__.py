from .app import App, TestNumber
from .codes import CodePurpose, CodeStatus, VerificationCode
from .content import Signature, Template, TemplateVersion
from .messages import (
    FINAL_STATUSES,
    Channel,
    Message,
    MessageEvent,
    MessageKind,
    MessageStatus,
    mask_phone,
)

__all__ = [
    "App",
    "Channel",
    "CodePurpose",
    "CodeStatus",
    "FINAL_STATUSES",
    "Message",
    "MessageEvent",
    "MessageKind",
    "MessageStatus",
    "Signature",
    "Template",
    "TemplateVersion",
    "TestNumber",
    "VerificationCode",
    "mask_phone",
]
