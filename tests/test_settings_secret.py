"""
The AMI secret: where it is taken from, and a file holding it that other
users can read refused (like ssh with a private key).
"""

import os

import pytest

from switchboard import settings
from switchboard.yamlconf import ConfigError

BASE = """\
routing: routing.yaml
alarm: alarm.yaml
ami:
  username: switchboard
"""


def write(path, text, mode):
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


@pytest.fixture(autouse=True)
def umask():
    # What the files' modes are, not what the umask left of them.
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_secret_in_a_config_others_can_read_is_refused_with_the_fix(tmp_path):
    config = write(tmp_path / "switchboard.yaml", BASE + "  secret: s3cret\n", 0o644)
    with pytest.raises(ConfigError) as e:
        settings.load(config, environ={})
    [problem] = e.value.problems
    text = str(problem)
    assert text.startswith(f"{config}:5:11: ami.secret: ")
    assert "mode 0644" in text and f"chmod 600 {config}" in text
    assert "s3cret" not in text


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_group_or_world_access_is_enough_to_refuse(tmp_path, mode):
    config = write(tmp_path / "switchboard.yaml", BASE + "  secret: s3cret\n", mode)
    with pytest.raises(ConfigError):
        settings.load(config, environ={})


def test_a_private_config_gives_its_secret(tmp_path):
    config = write(tmp_path / "switchboard.yaml", BASE + "  secret: s3cret\n", 0o600)
    ami = settings.load(config, environ={}).ami
    assert (ami.secret, ami.secret_source) == ("s3cret", config)
    assert "s3cret" not in repr(ami)


def test_a_config_without_a_secret_may_be_read_by_all(tmp_path):
    config = write(tmp_path / "switchboard.yaml", BASE, 0o644)
    assert settings.load(config, environ={}).ami.secret == ""


def test_the_secret_from_a_private_file(tmp_path):
    write(tmp_path / "ami-secret", "from-file\n", 0o600)
    config = write(tmp_path / "switchboard.yaml", BASE + "  secret_file: ami-secret\n", 0o644)
    ami = settings.load(config, environ={}).ami
    assert (ami.secret, ami.secret_source) == ("from-file", str(tmp_path / "ami-secret"))


def test_a_secret_file_others_can_read_is_refused(tmp_path):
    secret = write(tmp_path / "ami-secret", "from-file\n", 0o644)
    config = write(tmp_path / "switchboard.yaml", BASE + "  secret_file: ami-secret\n", 0o600)
    with pytest.raises(ConfigError) as e:
        settings.load(config, environ={})
    assert f"chmod 600 {secret}" in str(e.value.problems[0])
    assert str(e.value.problems[0]).startswith(f"{config}:5:16: ami.secret_file")


def test_a_missing_secret_file_is_named(tmp_path):
    config = write(tmp_path / "switchboard.yaml", BASE + "  secret_file: nowhere\n", 0o600)
    with pytest.raises(ConfigError) as e:
        settings.load(config, environ={})
    assert f"cannot read {tmp_path}/nowhere" in str(e.value.problems[0])


def test_the_systemd_credential_comes_before_the_file(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    write(credentials / "ami-secret", "from-systemd", 0o400)
    write(tmp_path / "ami-secret", "from-file", 0o600)
    config = write(tmp_path / "switchboard.yaml", BASE + "  secret_file: ami-secret\n", 0o644)
    ami = settings.load(config, environ={"CREDENTIALS_DIRECTORY": str(credentials)}).ami
    assert ami.secret == "from-systemd"
    assert ami.secret_source == f"systemd credential {credentials}/ami-secret"


def test_the_environment_comes_first(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    write(credentials / "ami-secret", "from-systemd", 0o400)
    config = write(tmp_path / "switchboard.yaml", BASE + "  secret: inline\n", 0o600)
    ami = settings.load(config, environ={"CREDENTIALS_DIRECTORY": str(credentials),
                                         "SWITCHBOARD_AMI_SECRET": "from-env"}).ami
    assert (ami.secret, ami.secret_source) == ("from-env", "environment SWITCHBOARD_AMI_SECRET")


def test_a_readable_config_holding_a_secret_is_refused_even_when_another_source_wins(tmp_path):
    # The secret in it is exposed all the same.
    config = write(tmp_path / "switchboard.yaml", BASE + "  secret: inline\n", 0o644)
    with pytest.raises(ConfigError):
        settings.load(config, environ={"SWITCHBOARD_AMI_SECRET": "from-env"})


def test_the_shipped_configs_hold_no_secret(monkeypatch):
    # A checkout leaves them readable by all: they must not need to be private.
    from tests.conftest import PROJECT
    # The production file names the FastAGI key's file on the server; here
    # the key comes from the environment, which is read first.
    monkeypatch.setenv("SWITCHBOARD_AGI_KEY", "test-key")
    for name in ("switchboard.yaml", "switchboard.production.yaml"):
        loaded = settings.load(os.path.join(PROJECT, "config", name), environ={})
        assert loaded.ami.secret == ""


def test_the_fastagi_address_an_instance_advertises(tmp_path):
    def advertised(agi):
        config = write(tmp_path / "s.yaml", f"agi: {agi}\n", 0o644)
        return settings.load(config, environ={"SWITCHBOARD_AMI_SECRET": "x"}).agi.advertise
    assert advertised("{key: k}") == "agi://127.0.0.1:4573"
    assert advertised("{key: k, listen: 10.0.0.6, port: 4581}") == "agi://10.0.0.6:4581"
    assert advertised("{key: k, listen: 0.0.0.0}") == ""
    assert advertised("{key: k, listen: 0.0.0.0, advertise: 'agi://sb1.example:4573'}") == \
        "agi://sb1.example:4573"
    with pytest.raises(ConfigError, match=r"s.yaml:1:\d+: agi.advertise: .* is not a FastAGI"):
        advertised("{key: k, advertise: 'agi://a&agi://b'}")
