"""Keyed crypto primitives: HMAC-SHA256's C and Python paths against the standard library."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


def test_hmac_extension_is_built_here():
    """CI must exercise the C path (make install builds it; it needs libssl-dev)."""
    from privgate import crypto

    assert crypto._fast_hmac is not None, "privgate._hmac not built: apt-get install libssl-dev"


@settings(max_examples=300, deadline=None)
@given(
    key=st.binary(min_size=0, max_size=130),
    prefix=st.binary(max_size=70),
    values=st.lists(st.binary(max_size=200), max_size=20),
)
def test_hmac_c_and_python_paths_equal_the_standard_library(key, prefix, values):
    import hashlib
    import hmac

    from privgate import crypto

    expected = b"".join(hmac.new(key, prefix + v, hashlib.sha256).digest() for v in values)
    h = crypto.HmacSha256(key)
    assert h.joined(values, prefix) == expected
    assert b"".join(h.many(values, prefix)) == expected  # the Python reference path
    fast, crypto._fast_hmac = crypto._fast_hmac, None
    try:
        assert crypto.HmacSha256(key).joined(values, prefix) == expected
    finally:
        crypto._fast_hmac = fast


def test_hmac_c_path_rejects_non_bytes_without_echoing_them():
    from privgate.crypto import HmacSha256

    with pytest.raises(TypeError) as e:
        HmacSha256(b"k").joined([b"ok", "secret-value"], b"")
    assert "secret-value" not in str(e.value)


def test_keyed_primitives_refuse_pickling():
    import pickle

    from privgate.crypto import HmacSha256, VectorSiv

    for obj in (HmacSha256(b"k" * 32), VectorSiv(b"s" * 64, b"ad")):
        with pytest.raises(TypeError, match="must not be pickled"):
            pickle.dumps(obj)
