#!/usr/bin/env python3
"""Certificates from a PKI nobody on this project wrote, for the foreign-PKI test suites
(services/ledger/tests/foreign_pki.rs, services/payments/tests/foreign_pki.rs).

    python3 interop/foreign_pki.py [--key-cache DIR] OUT_DIR SCENARIO [SCENARIO...]

Each scenario writes its files into OUT_DIR/SCENARIO/. Half the scenarios are made by the
`openssl` command line, half by Python `cryptography`; none by zt-ca or rcgen, so the
project's own CA code cannot agree with its own verifier on a mistake. `--key-cache DIR`
keeps the RSA keys of the key table (slow to generate: RSA-4096 can take seconds) across
runs; every other key is fresh.

Every leaf that is meant to be accepted is an X509-SVID as the project's profile wants it:
exactly one spiffe:// URI SAN, cA=false, KeyUsage digitalSignature (critical), EKU
serverAuth + clientAuth; server leaves also carry the DNS name `localhost`.

Scenarios, and what makes them:

  unlabelled  openssl    a CA with no URI SAN (`req -x509`, as step-ca, cert-manager and
                         Vault CAs are), a ledger and a payments leaf; a partner's CA
  trusted     openssl    two CAs, the second written as TRUSTED CERTIFICATE (`x509
                         -trustout`): trusting clientAuth, trusting serverAuth, rejecting
                         clientAuth; leaves of each CA
  glued       crypto     two CA files, the first without its final newline; leaves of each;
                         a root, an intermediate and a ledger leaf whose file lacks its
                         final newline (a keystore glued from leaf + intermediate)
  unusable    crypto     CAs signed with ecdsa-with-SHA512 or holding P-521 keys (usable
                         since the switch to aws-lc-rs), a CA with a URI name constraint
                         (never usable), keystore chains whose intermediate is
                         CA:FALSE or lacks keyCertSign, and a good CA with its leaves
  expired     crypto     a CA that expired yesterday, a current CA, leaves of the current CA
  revocation  openssl    `openssl ca`: root -> intermediate -> payments leaf, a ledger leaf
                         from the root, the root's empty CRL and its CRL revoking the
                         intermediate (`ca -revoke`, `ca -gencrl`)
  encrypted   openssl    a ledger and a payments leaf whose keys are encrypted: PKCS#8
                         (`genpkey -aes256`) and legacy PEM (`Proc-Type: 4,ENCRYPTED`)
  keys        both       the key table: one directory per case (see KEY_CASES), each a CA,
                         a ledger leaf and a payments leaf with the case's algorithms and
                         key encoding

Exit status 3 with a one-line message if a scenario needs `cryptography` and it is missing.
"""

import datetime
import os
import subprocess
import sys
import tempfile

TD = "zt.example"
LEDGER_ID = f"spiffe://{TD}/ns/prod/sa/ledger"
PAYMENTS_ID = f"spiffe://{TD}/ns/prod/sa/payments"
MISSING = "foreign_pki.py: Python `cryptography` is missing: python3 -m pip install cryptography"

# The key table: (case, maker, CA key, leaf key, leaf key encoding). Every algorithm appears
# once as the CA's key and at least once as the leaves' key; every encoding at least twice.
KEY_CASES = [
    ("ca-rsa2048-leaf-p256-sec1", "crypto", "rsa2048", "p256", "sec1"),
    ("ca-rsa3072-leaf-ed25519-pkcs8", "openssl", "rsa3072", "ed25519", "pkcs8"),
    ("ca-rsa4096-leaf-p384-sec1", "crypto", "rsa4096", "p384", "sec1"),
    ("ca-p256-leaf-rsa2048-pkcs1", "openssl", "p256", "rsa2048", "pkcs1"),
    ("ca-p384-leaf-rsa3072-pkcs8", "crypto", "p384", "rsa3072", "pkcs8"),
    ("ca-ed25519-leaf-rsa4096-pkcs1", "openssl", "ed25519", "rsa4096", "pkcs1"),
    ("ca-p256-leaf-p256-pkcs8", "openssl", "p256", "p256", "pkcs8"),
    ("ca-ed25519-leaf-p384-pkcs8", "crypto", "ed25519", "p384", "pkcs8"),
]


def write(path, data, mode=0o644):
    """Writes `data` to `path` atomically (beside it, then renamed), with `mode`."""
    directory = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(temp, mode)
    os.replace(temp, path)


# --- Python cryptography ---------------------------------------------------------------------


def crypto():
    """The cryptography modules, or exit 3 saying how to install them."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        print(MISSING, file=sys.stderr)
        sys.exit(3)
    return {
        "x509": x509,
        "hashes": hashes,
        "serialization": serialization,
        "ec": ec,
        "ed25519": ed25519,
        "rsa": rsa,
        "EKU": ExtendedKeyUsageOID,
        "NameOID": NameOID,
    }


class Crypto:
    """Certificates made with Python `cryptography`."""

    def __init__(self, out, key_cache):
        self.m = crypto()
        self.out = out
        self.key_cache = key_cache
        self.now = datetime.datetime.now(datetime.timezone.utc)

    def key(self, alg, cache_name=None):
        m = self.m
        if alg.startswith("rsa"):
            bits = int(alg[3:])
            if self.key_cache and cache_name:
                return self.cached(f"crypto-{alg}-{cache_name}", lambda: m["rsa"].generate_private_key(65537, bits))
            return m["rsa"].generate_private_key(65537, bits)
        if alg == "p256":
            return m["ec"].generate_private_key(m["ec"].SECP256R1())
        if alg == "p384":
            return m["ec"].generate_private_key(m["ec"].SECP384R1())
        if alg == "p521":
            return m["ec"].generate_private_key(m["ec"].SECP521R1())
        if alg == "ed25519":
            return m["ed25519"].Ed25519PrivateKey.generate()
        raise ValueError(alg)

    def cached(self, name, generate):
        s = self.m["serialization"]
        os.makedirs(self.key_cache, exist_ok=True)
        path = os.path.join(self.key_cache, name + ".pem")
        try:
            with open(path, "rb") as f:
                return s.load_pem_private_key(f.read(), None)
        except (OSError, ValueError):
            key = generate()
            write(path, self.pem_key(key, "pkcs8"), 0o600)
            return key

    def pem_key(self, key, encoding="pkcs8"):
        s = self.m["serialization"]
        fmt = s.PrivateFormat.PKCS8 if encoding == "pkcs8" else s.PrivateFormat.TraditionalOpenSSL
        return key.private_bytes(s.Encoding.PEM, fmt, s.NoEncryption())

    def digest(self, key, digest):
        if isinstance(key, self.m["ed25519"].Ed25519PrivateKey):
            return None
        return {"sha256": self.m["hashes"].SHA256(), "sha384": self.m["hashes"].SHA384(),
                "sha512": self.m["hashes"].SHA512()}[digest]

    def name(self, cn):
        x509, oid = self.m["x509"], self.m["NameOID"]
        return x509.Name([x509.NameAttribute(oid.ORGANIZATION_NAME, "python-cryptography"),
                          x509.NameAttribute(oid.COMMON_NAME, cn)])

    def cert(self, cn, key, issuer, extensions, days=(-1, 1), digest="sha256"):
        """A certificate for `key`, signed by `issuer` = (cert, key) or self-signed (None)."""
        x509 = self.m["x509"]
        builder = (x509.CertificateBuilder()
                   .subject_name(self.name(cn))
                   .issuer_name(issuer[0].subject if issuer else self.name(cn))
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(self.now + datetime.timedelta(days=days[0]))
                   .not_valid_after(self.now + datetime.timedelta(days=days[1])))
        for ext, critical in extensions:
            builder = builder.add_extension(ext, critical)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        signer = issuer[1] if issuer else key
        if issuer:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), False)
        return builder.sign(signer, self.digest(signer, digest))

    def ku(self, *, sign=False, cert_sign=False, crl_sign=False):
        return self.m["x509"].KeyUsage(
            digital_signature=sign, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
            crl_sign=crl_sign, encipher_only=False, decipher_only=False)

    def ca(self, cn, key, issuer=None, *, is_ca=True, cert_sign=True, uri=None, constraints=None,
           days=(-1, 30), digest="sha256"):
        x509 = self.m["x509"]
        ext = [(x509.BasicConstraints(ca=is_ca, path_length=None), True),
               (self.ku(sign=not cert_sign, cert_sign=cert_sign, crl_sign=cert_sign), True)]
        if uri:
            ext.append((x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), False))
        if constraints:
            ext.append((constraints, True))
        return self.cert(cn, key, issuer, ext, days, digest)

    def leaf(self, cn, key, issuer, spiffe_id, dns=(), digest="sha256"):
        x509, eku = self.m["x509"], self.m["EKU"]
        names = [x509.UniformResourceIdentifier(spiffe_id)] + [x509.DNSName(d) for d in dns]
        ext = [(x509.BasicConstraints(ca=False, path_length=None), True),
               (self.ku(sign=True), True),
               (x509.ExtendedKeyUsage([eku.SERVER_AUTH, eku.CLIENT_AUTH]), False),
               (x509.SubjectAlternativeName(names), False)]
        return self.cert(cn, key, issuer, ext, (-1, 1), digest)

    def save(self, directory, name, cert, key=None, encoding="pkcs8", newline=True):
        s = self.m["serialization"]
        pem = cert.public_bytes(s.Encoding.PEM)
        write(os.path.join(directory, name + ".pem"), pem if newline else pem.rstrip(b"\n"))
        if key is not None:
            write(os.path.join(directory, name + ".key"), self.pem_key(key, encoding), 0o600)

    def identities(self, directory, issuer, prefix="", alg="p256", encoding="pkcs8"):
        """A ledger and a payments leaf signed by `issuer`, as PREFIXledger / PREFIXpayments."""
        for who, spiffe_id, dns in (("ledger", LEDGER_ID, ["localhost"]), ("payments", PAYMENTS_ID, [])):
            key = self.key(alg, cache_name=f"{prefix}{who}")
            self.save(directory, prefix + who, self.leaf(f"{prefix}{who}", key, issuer, spiffe_id, dns),
                      key, encoding)


def scenario_glued(out, key_cache):
    c = Crypto(out, key_cache)
    for tag in ("a", "b"):
        key = c.key("p256")
        ca = c.ca(f"glued CA {tag}", key)
        # CA a's file lacks its final newline: `cat ca-a.pem ca-b.pem` glues END to BEGIN.
        c.save(out, f"ca-{tag}", ca, newline=tag != "a")
        c.identities(out, (ca, key), prefix=f"{tag}-")
    root_key, int_key, leaf_key = c.key("p256"), c.key("p256"), c.key("p256")
    root = c.ca("glued root", root_key)
    intermediate = c.ca("glued intermediate", int_key, (root, root_key))
    c.save(out, "root", root)
    c.save(out, "intermediate", intermediate)
    c.save(out, "chained-ledger", c.leaf("chained ledger", leaf_key, (intermediate, int_key), LEDGER_ID,
                                         ["localhost"]), leaf_key, newline=False)
    c.identities(out, (root, root_key), prefix="root-")


def scenario_unusable(out, key_cache):
    c = Crypto(out, key_cache)
    x509 = c.m["x509"]
    key = c.key("p256")
    good = c.ca("good CA", key)
    c.save(out, "ca", good)
    c.identities(out, (good, key))
    c.save(out, "ca-sha512", c.ca("SHA-512 CA", c.key("p256"), digest="sha512"))
    c.save(out, "ca-p521", c.ca("P-521 CA", c.key("p521")))
    constraints = x509.NameConstraints(permitted_subtrees=[x509.UniformResourceIdentifier(TD)],
                                       excluded_subtrees=None)
    c.save(out, "ca-uri-constraint", c.ca("URI-constrained CA", c.key("p256"), constraints=constraints))
    for name, kwargs in (("not-ca", {"is_ca": False}), ("no-cert-sign", {"cert_sign": False})):
        int_key, leaf_key = c.key("p256"), c.key("p256")
        intermediate = c.ca(f"intermediate {name}", int_key, (good, key), **kwargs)
        for who, spiffe_id, dns in (("ledger", LEDGER_ID, ["localhost"]), ("payments", PAYMENTS_ID, [])):
            leaf = c.leaf(f"{who} under {name}", leaf_key, (intermediate, int_key), spiffe_id, dns)
            s = c.m["serialization"]
            chain = leaf.public_bytes(s.Encoding.PEM) + intermediate.public_bytes(s.Encoding.PEM)
            write(os.path.join(out, f"{who}-{name}.pem"), chain)
            write(os.path.join(out, f"{who}-{name}.key"), c.pem_key(leaf_key), 0o600)


def scenario_expired(out, key_cache):
    c = Crypto(out, key_cache)
    for name, days in (("ca-expired", (-30, -1)), ("ca-expired-2", (-60, -2)), ("ca-current", (-1, 30))):
        key = c.key("p256")
        ca = c.ca(name, key, days=days)
        c.save(out, name, ca)
        if name == "ca-current":
            c.identities(out, (ca, key))


def crypto_key_case(out, key_cache, case, ca_alg, leaf_alg, encoding):
    c = Crypto(out, key_cache)
    ca_key = c.key(ca_alg, cache_name=f"{case}-ca")
    ca = c.ca(f"{ca_alg} CA", ca_key, digest="sha384" if ca_alg == "p384" else "sha256")
    c.save(out, "ca", ca)
    c.identities(out, (ca, ca_key), alg=leaf_alg, encoding=encoding)


# --- the openssl command line ----------------------------------------------------------------


class OpenSsl:
    """Certificates made with the `openssl` command line, in `out`."""

    def __init__(self, out, key_cache):
        self.out = out
        self.key_cache = key_cache
        self.serial = int.from_bytes(os.urandom(6), "big")

    def run(self, *args, stdin=None):
        result = subprocess.run(["openssl", *args], cwd=self.out, capture_output=True, input=stdin)
        if result.returncode != 0:
            sys.exit(f"openssl {' '.join(args)}: {result.stderr.decode(errors='replace')}")
        return result.stdout

    def path(self, name):
        return os.path.join(self.out, name)

    def key(self, name, alg="p256", encoding="pkcs8"):
        """Generates `name`.key (PKCS#8 as genpkey writes it), re-encoded as `encoding`."""
        path = self.path(f"{name}.key")
        if alg.startswith("rsa"):
            cached = os.path.join(self.key_cache, f"openssl-{alg}-{name}.key") if self.key_cache else None
            if cached and os.path.exists(cached):
                with open(cached, "rb") as f:
                    write(path, f.read(), 0o600)
            else:
                self.run("genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{alg[3:]}", "-out", path)
                if cached:
                    os.makedirs(self.key_cache, exist_ok=True)
                    with open(path, "rb") as f:
                        write(cached, f.read(), 0o600)
        elif alg in ("p256", "p384"):
            curve = {"p256": "P-256", "p384": "P-384"}[alg]
            self.run("genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{curve}", "-out", path)
        elif alg == "ed25519":
            self.run("genpkey", "-algorithm", "ED25519", "-out", path)
        else:
            raise ValueError(alg)
        if encoding == "sec1":
            self.run("ec", "-in", path, "-out", path)
        elif encoding == "pkcs1":
            self.run("rsa", "-traditional", "-in", path, "-out", path)
        os.chmod(path, 0o600)
        return path

    def ca(self, name, alg="p256", extra=()):
        """A self-signed CA with no URI SAN, as `openssl req -x509` makes one."""
        key = self.key(name, alg)
        digest = [] if alg == "ed25519" else ["-sha384" if alg == "p384" else "-sha256"]
        self.run("req", "-x509", "-new", "-key", key, "-subj", f"/O=openssl/CN={name}", "-days", "30",
                 *digest, "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", *extra,
                 "-out", self.path(f"{name}.pem"))
        return self.path(f"{name}.pem"), key

    def leaf(self, name, issuer, spiffe_id, dns=(), alg="p256", encoding="pkcs8", ca_alg="p256"):
        """An X509-SVID for `spiffe_id` signed by `issuer` = (cert, key) with `openssl x509 -req`."""
        key = self.key(name, alg, encoding)
        ext = self.path(f"{name}.ext")
        san = ",".join([f"URI:{spiffe_id}"] + [f"DNS:{d}" for d in dns])
        write(ext, "[svid]\nbasicConstraints = critical, CA:FALSE\n"
                   "keyUsage = critical, digitalSignature\n"
                   "extendedKeyUsage = serverAuth, clientAuth\n"
                   f"subjectAltName = {san}\n"
                   "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n")
        csr = self.path(f"{name}.csr")
        self.run("req", "-new", "-key", key, "-subj", f"/O=openssl/CN={name}", "-out", csr)
        self.serial += 1
        digest = [] if ca_alg == "ed25519" else ["-sha256"]
        self.run("x509", "-req", "-in", csr, "-CA", issuer[0], "-CAkey", issuer[1], "-set_serial",
                 str(self.serial), "-days", "1", *digest, "-extfile", ext, "-extensions", "svid",
                 "-out", self.path(f"{name}.pem"))
        return self.path(f"{name}.pem"), key

    def identities(self, issuer, prefix="", alg="p256", encoding="pkcs8", ca_alg="p256"):
        self.leaf(f"{prefix}ledger", issuer, LEDGER_ID, ["localhost"], alg, encoding, ca_alg)
        self.leaf(f"{prefix}payments", issuer, PAYMENTS_ID, [], alg, encoding, ca_alg)


def scenario_unlabelled(out, key_cache):
    o = OpenSsl(out, key_cache)
    o.identities(o.ca("ca"))
    o.ca("partner-ca")


def scenario_trusted(out, key_cache):
    o = OpenSsl(out, key_cache)
    a, b = o.ca("ca-a"), o.ca("ca-b")
    o.identities(a, prefix="a-")
    o.identities(b, prefix="b-")
    plain = open(a[0], "rb").read()
    for name, flags in (("client-auth", ["-addtrust", "clientAuth"]),
                        ("server-auth", ["-addtrust", "serverAuth"]),
                        ("reject-client-auth", ["-addreject", "clientAuth"])):
        trusted = o.run("x509", "-in", b[0], "-trustout", *flags)
        assert b"BEGIN TRUSTED CERTIFICATE" in trusted
        write(o.path(f"bundle-{name}.pem"), plain + trusted)


def scenario_revocation(out, key_cache):
    o = OpenSsl(out, key_cache)
    os.makedirs(o.path("newcerts"), exist_ok=True)
    write(o.path("index.txt"), "")
    write(o.path("serial"), "1000\n")
    write(o.path("crlnumber"), "01\n")
    write(o.path("ca.cnf"), "[ca]\ndefault_ca = root\n"
                            "[root]\ndir = .\ndatabase = index.txt\nnew_certs_dir = newcerts\n"
                            "serial = serial\ncrlnumber = crlnumber\ncertificate = root.pem\n"
                            "private_key = root.key\ndefault_md = sha256\ndefault_days = 1\n"
                            "default_crl_days = 1\npolicy = anything\nunique_subject = no\n"
                            "[anything]\norganizationName = optional\ncommonName = supplied\n"
                            "[intermediate]\nbasicConstraints = critical, CA:TRUE, pathlen:0\n"
                            "keyUsage = critical, keyCertSign, cRLSign\n"
                            "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n")
    root = o.ca("root")
    int_key = o.key("intermediate")
    o.run("req", "-new", "-key", int_key, "-subj", "/O=openssl/CN=intermediate", "-out", o.path("intermediate.csr"))
    o.run("ca", "-batch", "-config", "ca.cnf", "-extensions", "intermediate", "-notext",
          "-in", "intermediate.csr", "-out", "intermediate.pem")
    intermediate = (o.path("intermediate.pem"), int_key)
    o.leaf("ledger", root, LEDGER_ID, ["localhost"])
    leaf, key = o.leaf("payments-leaf", intermediate, PAYMENTS_ID)
    write(o.path("payments.pem"), open(leaf, "rb").read() + open(intermediate[0], "rb").read())
    os.replace(key, o.path("payments.key"))
    o.run("ca", "-batch", "-config", "ca.cnf", "-gencrl", "-out", "root.crl")
    o.run("ca", "-batch", "-config", "ca.cnf", "-revoke", "intermediate.pem", "-crl_reason", "keyCompromise")
    o.run("ca", "-batch", "-config", "ca.cnf", "-gencrl", "-out", "root-revoking-intermediate.crl")


def scenario_encrypted(out, key_cache):
    o = OpenSsl(out, key_cache)
    ca = o.ca("ca")
    o.identities(ca)
    for who in ("ledger", "payments"):
        plain = o.path(f"{who}.key")
        o.run("pkey", "-in", plain, "-aes256", "-passout", "pass:secret", "-out", o.path(f"{who}-pkcs8-encrypted.key"))
        o.run("ec", "-in", plain, "-aes256", "-passout", "pass:secret", "-out", o.path(f"{who}-legacy-encrypted.key"))
        for name, marker in (("pkcs8", b"BEGIN ENCRYPTED PRIVATE KEY"), ("legacy", b"Proc-Type: 4,ENCRYPTED")):
            assert marker in open(o.path(f"{who}-{name}-encrypted.key"), "rb").read(), name


def openssl_key_case(out, key_cache, case, ca_alg, leaf_alg, encoding):
    o = OpenSsl(out, key_cache)
    ca = o.ca("ca", ca_alg)
    o.identities(ca, alg=leaf_alg, encoding=encoding, ca_alg=ca_alg)
    for name in os.listdir(out):
        if name.endswith((".csr", ".ext")):
            os.remove(os.path.join(out, name))


def scenario_keys(out, key_cache):
    for case, maker, ca_alg, leaf_alg, encoding in KEY_CASES:
        directory = os.path.join(out, case)
        os.makedirs(directory, exist_ok=True)
        make = crypto_key_case if maker == "crypto" else openssl_key_case
        make(directory, key_cache, case, ca_alg, leaf_alg, encoding)
        write(os.path.join(directory, "made-by"), maker + "\n")
    write(os.path.join(out, "cases"), "".join(f"{case} {maker} {ca} {leaf} {enc}\n"
                                              for case, maker, ca, leaf, enc in KEY_CASES))


SCENARIOS = {
    "unlabelled": scenario_unlabelled,
    "trusted": scenario_trusted,
    "glued": scenario_glued,
    "unusable": scenario_unusable,
    "expired": scenario_expired,
    "revocation": scenario_revocation,
    "encrypted": scenario_encrypted,
    "keys": scenario_keys,
}


def main(argv):
    key_cache = None
    if len(argv) > 1 and argv[0] == "--key-cache":
        key_cache, argv = os.path.abspath(argv[1]), argv[2:]
    if len(argv) < 2 or any(s not in SCENARIOS for s in argv[1:]):
        sys.exit(f"usage: foreign_pki.py [--key-cache DIR] OUT_DIR SCENARIO...\nscenarios: {' '.join(SCENARIOS)}")
    for scenario in argv[1:]:
        directory = os.path.abspath(os.path.join(argv[0], scenario))
        os.makedirs(directory, exist_ok=True)
        SCENARIOS[scenario](directory, key_cache)


if __name__ == "__main__":
    main(sys.argv[1:])
