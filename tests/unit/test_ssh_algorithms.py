"""The order of ciphers and key exchanges offered, and ssh_config's KexAlgorithms forms."""

from __future__ import annotations

import pytest

from trains_nodeprep.node.algorithms import UnusableKexAlgorithms, cipher_order, kex_order

# paramiko 5's own order, with and without its post-quantum hybrid (it depends on cryptography)
PARAMIKO_KEX = (
    "mlkem768x25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group14-sha256",
)
CLASSICAL_ONLY = PARAMIKO_KEX[1:]


def test_p256_takes_curve25519s_place_and_a_post_quantum_hybrid_stays_first():
    assert kex_order(PARAMIKO_KEX) == (
        "mlkem768x25519-sha256",
        "ecdh-sha2-nistp256",
        "curve25519-sha256@libssh.org",
        "ecdh-sha2-nistp384",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group14-sha256",
    )
    assert kex_order(CLASSICAL_ONLY)[:2] == ("ecdh-sha2-nistp256", "curve25519-sha256@libssh.org")


@pytest.mark.parametrize(
    "offered", [PARAMIKO_KEX, CLASSICAL_ONLY, ("diffie-hellman-group14-sha256",)]
)
def test_the_default_order_offers_exactly_what_paramiko_offers(offered):
    assert sorted(kex_order(offered)) == sorted(offered)


def test_a_plain_list_is_the_whole_offer_in_its_order_with_openssh_names_and_patterns():
    assert kex_order(PARAMIKO_KEX, "curve25519-sha256") == ("curve25519-sha256@libssh.org",)
    assert kex_order(PARAMIKO_KEX, "ecdh-sha2-*, curve25519-sha256") == (
        "ecdh-sha2-nistp256",
        "ecdh-sha2-nistp384",
        "curve25519-sha256@libssh.org",
    )
    assert kex_order(PARAMIKO_KEX, "sntrup761x25519-sha512,diffie-hellman-group14-sha256") == (
        "diffie-hellman-group14-sha256",
    )


def test_minus_removes_caret_puts_first_plus_adds_nothing_paramiko_lacks():
    assert kex_order(PARAMIKO_KEX, "-ecdh-sha2-*") == (
        "mlkem768x25519-sha256",
        "curve25519-sha256@libssh.org",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group14-sha256",
    )
    assert kex_order(PARAMIKO_KEX, "-curve25519-sha256")[:2] == (
        "mlkem768x25519-sha256",
        "ecdh-sha2-nistp256",
    )
    assert "curve25519-sha256@libssh.org" not in kex_order(PARAMIKO_KEX, "-curve25519-sha256")
    assert kex_order(PARAMIKO_KEX, "^curve25519-sha256")[:2] == (
        "curve25519-sha256@libssh.org",
        "mlkem768x25519-sha256",
    )
    assert kex_order(PARAMIKO_KEX, "+sntrup761x25519-sha512") == kex_order(PARAMIKO_KEX)


@pytest.mark.parametrize("configured", ["sntrup761x25519-sha512", "-*", "", "  "])
def test_a_value_that_leaves_nothing_is_an_error_naming_the_value_and_what_is_supported(configured):
    with pytest.raises(UnusableKexAlgorithms) as raised:
        kex_order(CLASSICAL_ONLY, configured)
    assert repr(configured) in str(raised.value) and "ecdh-sha2-nistp256" in str(raised.value)


def test_aes_gcm_comes_first_and_the_rest_stays_in_order():
    offered = (
        "aes128-ctr",
        "aes256-ctr",
        "aes256-gcm@openssh.com",
        "aes128-gcm@openssh.com",
        "chacha20-poly1305@openssh.com",
    )
    assert cipher_order(offered) == (
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-ctr",
        "aes256-ctr",
        "chacha20-poly1305@openssh.com",
    )
    assert cipher_order(("aes128-ctr",)) == ("aes128-ctr",)
