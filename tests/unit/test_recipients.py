import pytest

from wasched.common.recipients import InvalidRecipient, mask, parse_recipient


@pytest.mark.parametrize(
    ("to", "jid"),
    [
        ("447957189696", "447957189696@s.whatsapp.net"),
        ("+44 7957 189696", "447957189696@s.whatsapp.net"),
        ("+44 (0)7957 189696".replace("(0)", ""), "447957189696@s.whatsapp.net"),
        ("00447957189696", "447957189696@s.whatsapp.net"),
        ("+1 (415) 555-2671", "14155552671@s.whatsapp.net"),
        ("380689640017", "380689640017@s.whatsapp.net"),
        ("447957189696@s.whatsapp.net", "447957189696@s.whatsapp.net"),
        ("120363025246125486@g.us", "120363025246125486@g.us"),
        ("447957189696-1609459200@g.us", "447957189696-1609459200@g.us"),
        # possible numbers that the range metadata may not (yet) know: WhatsApp decides
        ("447700900123", "447700900123@s.whatsapp.net"),  # Ofcom's drama range
        ("+44 7700 900999", "447700900999@s.whatsapp.net"),
        ("+1 555 010 0199", "15550100199@s.whatsapp.net"),
    ],
)
def test_accepted_spellings_normalise(to: str, jid: str) -> None:
    assert parse_recipient(to).jid == jid


def test_group_and_user_are_told_apart() -> None:
    assert parse_recipient("120363025246125486@g.us").is_group
    user = parse_recipient("+44 7957 189696")
    assert not user.is_group
    assert user.e164 == "+447957189696"


@pytest.mark.parametrize(
    ("to", "says"),
    [
        ("", "recipient is empty"),
        ("   ", "recipient is empty"),
        (None, "recipient is empty"),
        (447957189696, "recipient is empty"),
        ("Reem", "not a phone number"),
        ("12", "not a phone number"),
        ("+44 7957", r"wrong length for country code \+44"),
        ("999123456789", "unknown country code"),
        ("someone@example.com", "not a WhatsApp address"),
        ("447957189696@s.whatsapp.net.evil", "not a WhatsApp address"),
    ],
)
def test_rejected_recipients_say_why(to: object, says: str) -> None:
    with pytest.raises(InvalidRecipient, match=says):
        parse_recipient(to)


def test_rejection_text_masks_the_number() -> None:
    with pytest.raises(InvalidRecipient) as info:
        parse_recipient("+44 7957 18")
    assert "795718" not in str(info.value)
    assert "…5718" in str(info.value)


@pytest.mark.parametrize(
    ("to", "masked"),
    [
        ("447957189696", "…9696"),
        ("+44 7957 189696", "…9696"),
        ("447957189696@s.whatsapp.net", "…9696"),
        ("12", "…12"),
    ],
)
def test_mask_keeps_last_four_digits(to: str, masked: str) -> None:
    assert mask(to) == masked
