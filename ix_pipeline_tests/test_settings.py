"""Settings from the environment: defaults, and a clear error naming a variable that cannot
be used (never a silent guess)."""

from __future__ import annotations

import pytest

from ix_pipeline.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("IX_SMTP_PORT", "2525", "smtp_port", 2525),
        ("IX_SMTP_PORT", "", "smtp_port", 587),
        ("IX_EXPIRING_SOON_DAYS", " 30 ", "expiring_soon_days", 30),
        ("IX_AUTO_RESTORE", "off", "auto_restore", False),
        ("IX_AUTO_RESTORE", "Yes", "auto_restore", True),
        ("IX_SMTP_STARTTLS", "0", "smtp_starttls", False),
    ],
)
def test_settings_read_their_variables(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str, expected: object
) -> None:
    monkeypatch.setenv(name, value)
    assert getattr(load_settings("/tmp/ix-settings-test"), field) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IX_SMTP_PORT", "abc"),
        ("IX_EXPIRING_SOON_DAYS", "7d"),
        ("IX_AUTO_RESTORE", "flase"),
        ("IX_SMTP_STARTTLS", "maybe"),
    ],
)
def test_an_unusable_value_is_an_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"{name} must be .*{value!r}"):
        load_settings("/tmp/ix-settings-test")
