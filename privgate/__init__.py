"""privgate: protect personal data in training datasets before any model sees it.

The public Python API for training code is `read_table` and `verify`:

    import privgate
    privgate.verify("out/demo_customers")            # raises VerifyError if refused
    table = privgate.read_table("out/demo_customers", columns=["plan", "zip"])
"""

__version__ = "0.1.0"


def read_table(*args, **kwargs):
    """See `privgate.reader.read_table`."""
    from privgate.reader import read_table as _read_table

    return _read_table(*args, **kwargs)


def verify(*args, **kwargs):
    """See `privgate.reader.verify`."""
    from privgate.reader import verify as _verify

    return _verify(*args, **kwargs)
