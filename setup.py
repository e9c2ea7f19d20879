"""privgate: installs the code and the `privgate` console script.

Also what `--setup_file ./setup.py` ships to Dataflow workers. Versions are pinned in
requirements.lock (installed by `make install`); the ranges here only state compatibility.
"""

from setuptools import Extension, find_packages, setup

setup(
    name="privgate",
    version="0.1.0",
    description="Data-protection preprocessing for training datasets (Beam, Presidio, "
    "Parquet encryption)",
    python_requires=">=3.11",
    packages=find_packages(include=["privgate*", "pipelines*", "transforms*", "schemas*"]),
    install_requires=[
        "apache-beam>=2.77,<3",
        "pyarrow>=25",
        "cryptography>=50",
        "numpy>=2",
        "pyyaml>=6",
        "presidio-analyzer>=2.2.366",
        "presidio-anonymizer>=2.2.366",
        "great-expectations>=1.24",
    ],
    # KMS client libraries are optional: the local keyring needs none of them.
    extras_require={
        "demo": ["faker>=40"],
        "pkcs11": ["python-pkcs11>=0.10"],
        "aws": ["boto3>=1.40"],
        "gcp": ["google-cloud-kms>=3", "google-crc32c>=1.5", "apache-beam[gcp]>=2.77,<3"],
    },
    # HMAC-SHA256 over many values with OpenSSL (libssl-dev to build); optional: without it
    # privgate.crypto.HmacSha256 falls back to hashlib, bit-identical and ~5x slower.
    ext_modules=[
        Extension("privgate._hmac", ["privgate/_hmac.c"], libraries=["crypto"], optional=True)
    ],
    entry_points={"console_scripts": ["privgate=privgate.cli:main"]},
)
