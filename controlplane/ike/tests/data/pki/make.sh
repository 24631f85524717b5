#!/bin/sh
# Regenerates the keys and certificates the esprit-ikev2 tests use (tests/pki.rs, tests/auth.rs,
# tests/identity.rs). Made with strongSwan's `pki` tool (5.9) and the openssl CLI (3.0).
#
# Every validity window is fixed, so the tests pass for decades: they verify at fixed instants
# (unix seconds) inside or outside these windows, never at the current time.
#
#   CAs and good end entities   2024-01-01 .. 2074-01-01 (end entities .. 2064-01-01)
#   expired.crt                 2020-01-01 .. 2022-01-01
#   future.crt                  2040-01-01 .. 2070-01-01
#
# The hierarchy:
#
#   rsa-ca (RSA-3072, self-signed)
#     ├── server-rsa        RSA-2048   SAN DNS vpn.example.com, IP 192.0.2.1, IP 2001:db8::1
#     ├── expired           P-256
#     ├── future            P-256
#     ├── broken            P-256      (a byte of its subject changed after signing)
#     ├── fake-ca           P-256      an end entity, no CA basicConstraints
#     │     └── victim      P-256      issued by the end entity above
#     └── int-ca (P-384, CA, pathlen 0)
#           ├── client-p256 P-256      SAN email alice@example.com, DNS alice.example.com
#           └── sub-ca      P-256      CA, but its issuer allows no further CA
#                 └── deep  P-256
#   p256-ca (P-256, self-signed)
#     └── ed25519-ee        Ed25519    SAN DNS ed.example.com
#   p384-ca (P-384, self-signed)
#     └── server-p384       P-384      SAN DNS p384.example.com
#   unknown-ca (P-256, self-signed, trusted by no test)
#     └── unknown-ee        P-256      SAN DNS unknown.example.com
#
# Extra keys for the signature tests: p521.key (P-521, PKCS#8), rsa-pkcs8.key (the
# server-rsa key re-encoded as PKCS#8) and encrypted.key (client-p256's, encrypted PKCS#8). pki writes RSA keys as PKCS#1, ECDSA keys as SEC1 and
# Ed25519 keys as PKCS#8.
set -eu
cd "$(dirname "$0")"

DATEFORM='%Y-%m-%d %H:%M:%S'
CA_FROM='2024-01-01 00:00:00'
CA_TO='2074-01-01 00:00:00'
EE_FROM='2024-01-01 00:00:00'
EE_TO='2064-01-01 00:00:00'
O='O=Esprit Test'

quiet() { "$@" 2>/dev/null; }

gen() { # gen NAME TYPE SIZE
    if [ "$2" = ed25519 ]; then
        quiet pki --gen --type ed25519 --outform pem > "$1.key"
    else
        quiet pki --gen --type "$2" --size "$3" --outform pem > "$1.key"
    fi
}

self() { # self NAME DN
    quiet pki --self --in "$1.key" --dn "$2" --ca --serial 01 \
        --not-before "$CA_FROM" --not-after "$CA_TO" --dateform "$DATEFORM" --outform pem > "$1.crt"
}

issue() { # issue NAME ISSUER DN FROM TO [extra pki options...]
    name=$1 issuer=$2 dn=$3 from=$4 to=$5
    shift 5
    quiet pki --pub --in "$name.key" |
        quiet pki --issue --cacert "$issuer.crt" --cakey "$issuer.key" --dn "$dn" \
            --not-before "$from" --not-after "$to" --dateform "$DATEFORM" --outform pem "$@" > "$name.crt"
}

rm -f ./*.key ./*.crt ./*.der

gen rsa-ca rsa 3072
self rsa-ca "C=CH, $O, CN=Esprit RSA Root CA"
gen p256-ca ecdsa 256
self p256-ca "C=CH, $O, CN=Esprit P-256 Root CA"
gen p384-ca ecdsa 384
self p384-ca "C=CH, $O, CN=Esprit P-384 Root CA"
gen unknown-ca ecdsa 256
self unknown-ca "C=CH, O=Somebody Else, CN=Unknown CA"

gen int-ca ecdsa 384
issue int-ca rsa-ca "C=CH, $O, OU=Intermediate, CN=Esprit Intermediate CA" "$CA_FROM" "$CA_TO" \
    --ca --pathlen 0 --serial 10

gen server-rsa rsa 2048
issue server-rsa rsa-ca "C=CH, $O, CN=vpn.example.com" "$EE_FROM" "$EE_TO" --serial 20 \
    --san vpn.example.com --san 192.0.2.1 --san 2001:db8::1 --flag serverAuth
gen client-p256 ecdsa 256
issue client-p256 int-ca "C=CH, $O, OU=Users, CN=alice@example.com" "$EE_FROM" "$EE_TO" --serial 21 \
    --san alice@example.com --san alice.example.com
gen server-p384 ecdsa 384
issue server-p384 p384-ca "C=CH, $O, CN=p384.example.com" "$EE_FROM" "$EE_TO" --serial 22 \
    --san p384.example.com
gen ed25519-ee ed25519
issue ed25519-ee p256-ca "C=CH, $O, CN=ed.example.com" "$EE_FROM" "$EE_TO" --serial 23 \
    --san ed.example.com
gen unknown-ee ecdsa 256
issue unknown-ee unknown-ca "C=CH, O=Somebody Else, CN=unknown.example.com" "$EE_FROM" "$EE_TO" --serial 24 \
    --san unknown.example.com

gen expired ecdsa 256
issue expired rsa-ca "C=CH, $O, CN=expired.example.com" '2020-01-01 00:00:00' '2022-01-01 00:00:00' \
    --serial 30 --san expired.example.com
gen future ecdsa 256
issue future rsa-ca "C=CH, $O, CN=future.example.com" '2040-01-01 00:00:00' '2070-01-01 00:00:00' \
    --serial 31 --san future.example.com

# A signature that does not verify: sign, then change one letter of the subject's CN inside the
# signed part (the DER stays well formed, only the signature no longer matches).
gen broken ecdsa 256
issue broken rsa-ca "C=CH, $O, CN=broken.example.com" "$EE_FROM" "$EE_TO" --serial 32
python3 - <<'EOF'
import base64, re
pem = open("broken.crt").read()
der = base64.b64decode("".join(l for l in pem.splitlines() if not l.startswith("-----")))
assert der.count(b"broken.example.com") == 1
der = der.replace(b"broken.example.com", b"brokeN.example.com")
b64 = base64.b64encode(der).decode()
with open("broken.crt", "w") as f:
    f.write("-----BEGIN CERTIFICATE-----\n")
    f.write("\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)))
    f.write("\n-----END CERTIFICATE-----\n")
EOF

# An end entity (no CA basicConstraints) that signs another certificate.
gen fake-ca ecdsa 256
issue fake-ca rsa-ca "C=CH, $O, CN=fake-ca.example.com" "$EE_FROM" "$EE_TO" --serial 33
# pki refuses to issue with a certificate that is not a CA, so `openssl ca` signs this one.
gen victim ecdsa 256
tmp=$(mktemp -d)
touch "$tmp/index.txt"
echo 34 > "$tmp/serial"
cat > "$tmp/ca.cnf" <<CNF
[ca]
default_ca = fake
[fake]
database = $tmp/index.txt
serial = $tmp/serial
new_certs_dir = $tmp
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
[ext]
subjectAltName = DNS:victim.example.com
CNF
openssl req -new -key victim.key -subj "/C=CH/O=Esprit Test/CN=victim.example.com" -out "$tmp/victim.csr"
openssl ca -batch -notext -config "$tmp/ca.cnf" -cert fake-ca.crt -keyfile fake-ca.key -in "$tmp/victim.csr" \
    -out victim.crt -startdate 20240101000000Z -enddate 20640101000000Z -extensions ext \
    -preserveDN 2>/dev/null
rm -rf "$tmp"

# A CA below int-ca, whose pathlen 0 allows no further CA.
gen sub-ca ecdsa 256
issue sub-ca int-ca "C=CH, $O, CN=Esprit Sub CA" "$CA_FROM" "$CA_TO" --ca --serial 35
gen deep ecdsa 256
issue deep sub-ca "C=CH, $O, CN=deep.example.com" "$EE_FROM" "$EE_TO" --serial 36

# More key encodings for the loaders and signature tests.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out p521.key 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in server-rsa.key -out rsa-pkcs8.key
openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:secret -in client-p256.key -out encrypted.key
# The same certificate twice in one file, and a DER copy.
cat rsa-ca.crt p384-ca.crt > two-cas.crt
openssl x509 -in server-rsa.crt -outform DER -out server-rsa.der
