#!/bin/sh
# Makes the webhook's CA and serving certificate with openssl, for
# deploy/webhook/manual (clusters without cert-manager):
#   deploy/webhook/manual/make-certs.sh [NAMESPACE]
# writes certs/ca.crt, certs/tls.crt and certs/tls.key beside this script.
# The CA key (certs/ca.key) is kept to sign the next serving certificate:
# renewing with the same CA keeps caBundle valid, so running this again
# before the certificate expires rotates it without a failed request.
set -eu
ns=${1:-podpath-system}
dir=$(cd "$(dirname "$0")" && pwd)/certs
mkdir -p "$dir"
umask 077
if [ ! -f "$dir/ca.key" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=podpath-webhook-ca" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
fi
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=podpath-webhook.$ns.svc" -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:podpath-webhook.%s.svc,DNS:podpath-webhook.%s.svc.cluster.local\nextendedKeyUsage=serverAuth\n' \
    "$ns" "$ns" > "$dir/tls.ext"
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 365 -extfile "$dir/tls.ext" -out "$dir/tls.crt" 2>/dev/null
rm -f "$dir/tls.csr" "$dir/tls.ext"
openssl verify -CAfile "$dir/ca.crt" "$dir/tls.crt"
