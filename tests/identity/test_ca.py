"""The cluster CA and the node certificates it issues."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import stat
from pathlib import Path

import pytest
from cryptography import x509

from bacalhau.errors import InvalidConfiguration, InvalidRequest
from bacalhau.identity import (
    ClusterCA,
    NodeFiles,
    NodeIdentity,
    check_node_files,
    node_dns_name,
    node_id_from_certificate,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_and_load(tmp_path: Path) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    assert _mode(tmp_path / "ca" / "ca.key") == 0o600
    loaded = ClusterCA.load(tmp_path / "ca")
    assert loaded.certificate == ca.certificate
    basic = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    ClusterCA.create(tmp_path / "ca")
    with pytest.raises(InvalidConfiguration):
        ClusterCA.create(tmp_path / "ca")


def test_load_missing_ca_has_a_hint(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfiguration) as err:
        ClusterCA.load(tmp_path / "nowhere")
    assert err.value.hint


def test_issued_certificate_names_the_node(tmp_path: Path) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    identity = NodeIdentity.load_or_create(tmp_path / "node")
    files = ca.issue_node_certificate(identity, hosts=["127.0.0.1", "node1.example.org", "::1"])
    assert files == NodeFiles.in_dir(tmp_path / "node")
    assert _mode(files.tls_key) == 0o600
    assert files.ca_cert.read_bytes() == ca.certificate_pem

    cert = x509.load_pem_x509_certificate(files.tls_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"bacalhau://node/{identity.node_id}"
    ]
    assert san.get_values_for_type(x509.DNSName) == [
        node_dns_name(identity.node_id),
        "node1.example.org",
    ]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert node_id_from_certificate(cert) == identity.node_id
    cert.verify_directly_issued_by(ca.certificate)
    assert check_node_files(files) == identity.node_id


def test_certificate_never_outlives_the_ca(tmp_path: Path) -> None:
    ca = ClusterCA.create(tmp_path / "ca", days=10)
    files = ca.issue_node_certificate(NodeIdentity.load_or_create(tmp_path / "n"), days=365)
    cert = x509.load_pem_x509_certificate(files.tls_cert.read_bytes())
    assert cert.not_valid_after_utc <= ca.certificate.not_valid_after_utc


def test_bad_hosts_are_refused(tmp_path: Path) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    identity = NodeIdentity.load_or_create(tmp_path / "n")
    with pytest.raises(InvalidRequest):
        ca.issue_node_certificate(identity, hosts=["bad host name"])


def test_issue_needs_a_data_dir(tmp_path: Path) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    with pytest.raises(InvalidRequest):
        ca.issue_node_certificate(NodeIdentity.generate())
    files = ca.issue_node_certificate(NodeIdentity.generate(), data_dir=tmp_path / "x")
    assert files.tls_cert.exists()


def test_check_reports_missing_files_with_the_issue_hint(tmp_path: Path) -> None:
    NodeIdentity.load_or_create(tmp_path / "n")
    with pytest.raises(InvalidConfiguration) as err:
        check_node_files(NodeFiles.in_dir(tmp_path / "n"))
    assert "bacalhau ca issue" in err.value.hint


def test_check_refuses_a_certificate_for_another_node(tmp_path: Path) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    ca.issue_node_certificate(NodeIdentity.load_or_create(tmp_path / "a"))
    NodeIdentity.load_or_create(tmp_path / "b")
    for name in ("tls.key", "tls.crt", "ca.crt"):
        shutil.copy(tmp_path / "a" / name, tmp_path / "b" / name)
    with pytest.raises(InvalidConfiguration, match="issued for node"):
        check_node_files(NodeFiles.in_dir(tmp_path / "b"))


def test_check_refuses_a_certificate_from_another_ca(tmp_path: Path) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    other = ClusterCA.create(tmp_path / "other")
    files = ca.issue_node_certificate(NodeIdentity.load_or_create(tmp_path / "n"))
    files.ca_cert.write_bytes(other.certificate_pem)
    with pytest.raises(InvalidConfiguration, match="not issued by"):
        check_node_files(files)


@pytest.mark.parametrize("name", ["ca.crt", "tls.crt", "tls.key"])
def test_a_damaged_tls_file_is_named(tmp_path: Path, name: str) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    files = ca.issue_node_certificate(NodeIdentity.load_or_create(tmp_path / "n"))
    damaged = files.data_dir / name
    damaged.write_bytes(b"-----BEGIN garbage-----\nnot pem\n")
    os.chmod(damaged, 0o600)
    with pytest.raises(InvalidConfiguration) as err:
        check_node_files(files)
    assert err.value.message == f"{damaged} is not readable PEM"


def test_a_key_that_is_a_folder_is_said_so(tmp_path: Path) -> None:
    key = tmp_path / "n" / "node.key"
    key.mkdir(parents=True)
    with pytest.raises(InvalidConfiguration, match=f"node key {key} is not a file"):
        NodeIdentity.load(tmp_path / "n")


def test_check_refuses_mismatched_key_and_open_permissions(tmp_path: Path) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    files = ca.issue_node_certificate(NodeIdentity.load_or_create(tmp_path / "n"))
    os.chmod(files.tls_key, 0o644)
    with pytest.raises(InvalidConfiguration, match="accessible by other users"):
        check_node_files(files)
    os.chmod(files.tls_key, 0o600)
    other = ca.issue_node_certificate(NodeIdentity.generate(), data_dir=tmp_path / "o")
    shutil.copy(other.tls_key, files.tls_key)
    with pytest.raises(InvalidConfiguration, match="is not the key of"):
        check_node_files(files)


def test_check_refuses_an_expired_certificate(tmp_path: Path) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    files = ca.issue_node_certificate(NodeIdentity.load_or_create(tmp_path / "n"), days=1)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)
    with pytest.raises(InvalidConfiguration, match="valid only"):
        check_node_files(files, now=later)


def test_a_certificate_not_yet_valid_names_this_machines_clock(tmp_path: Path) -> None:
    """Read by a node whose clock is two days behind the one that issued it (a day is allowed
    for): the clock is at fault, not the certificate, and the error says so."""
    ca = ClusterCA.create(tmp_path / "ca")
    files = ca.issue_node_certificate(NodeIdentity.load_or_create(tmp_path / "n"))
    behind = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=20)
    assert check_node_files(files, now=behind)  # within the day allowed for
    earlier = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
    with pytest.raises(InvalidConfiguration) as refused:
        check_node_files(files, now=earlier)
    assert f"this machine's clock reads {earlier:%Y-%m-%d %H:%M} UTC" in refused.value.message
    assert "set this machine's clock right" in (refused.value.hint or "")
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=400)
    with pytest.raises(InvalidConfiguration) as expired:
        check_node_files(files, now=later)
    assert "clock right" not in (expired.value.hint or "")
