#!/usr/bin/env bash
# Make the certificates for TLS (contract §14): a private CA and one certificate per
# service, with the openssl command line. ./make_certs.sh --help says how.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SERVICES=(product_db customer_db seller_server buyer_server etcd)
PYTHON="${PYTHON:-python3}"

usage() {
    cat <<END
Usage: ./make_certs.sh [--dir DIR] [--days N] [HOST...]

Make a private CA (ca.crt, ca.key) and one certificate per service, signed by it:
product_db, customer_db, seller_server and buyer_server (NAME.crt, NAME.key; PEM,
EC P-256), and etcd, for the members of an etcd cluster (REPLICATED=1 TLS=1
./run_all.sh: each member serves its clients and its peers with it). Each certificate is valid for the HOSTs given (names or addresses: the
names the services are dialled by) and for localhost, 127.0.0.1 and ::1; each
serves as a server's and a client's (a frontend presents its own to the
databases). Keys are readable by their owner only.

An existing CA in DIR is kept and signs the new certificates, so that services
and clients that trust it go on trusting the new ones: to rotate, run this again
and send each service SIGHUP (it loads its files anew for new connections).
Delete ca.crt and ca.key first to start a new CA.

Options:
  --dir DIR    where to write them (default \$RUN_DIR/tls, RUN_DIR as for run_all.sh: ./run/tls)
  --days N     days the service certificates are valid (default $(days_default))
  -h, --help   print this and make nothing

Then start each service with --tls-cert DIR/NAME.crt --tls-key DIR/NAME.key
--tls-ca DIR/ca.crt (TLS=1 ./run_all.sh does), and the CLIs with --tls-ca DIR/ca.crt
(or export MARKET_TLS_CA=DIR/ca.crt). etcd members take DIR/etcd.crt, DIR/etcd.key and
DIR/ca.crt with --client-cert-auth (docs/replicated.md says how).
END
}

days_default() {
    (cd "$ROOT" && "$PYTHON" -m market.config TLS_CERT_DAYS 2>/dev/null) || echo 365
}

DIR="${RUN_DIR:-$ROOT/run}/tls"
DAYS=""
HOSTS=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --dir) [ $# -ge 2 ] || { echo "make_certs.sh: --dir needs a directory" >&2; exit 2; }
               DIR="$2"; shift ;;
        --dir=*) DIR="${1#--dir=}" ;;
        --days) [ $# -ge 2 ] || { echo "make_certs.sh: --days needs a number" >&2; exit 2; }
                DAYS="$2"; shift ;;
        --days=*) DAYS="${1#--days=}" ;;
        -*) echo "make_certs.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
        *) HOSTS+=("$1") ;;
    esac
    shift
done
DAYS="${DAYS:-$(days_default)}"
[[ "$DAYS" =~ ^[1-9][0-9]{0,4}$ ]] || { echo "make_certs.sh: --days must be a whole number of days from 1, not '$DAYS'" >&2; exit 2; }
command -v openssl >/dev/null || { echo "make_certs.sh: the openssl command is missing (apt-get install openssl)" >&2; exit 1; }

# The subject alternative names: the hosts given, then localhost, 127.0.0.1 and ::1.
san=""
declare -A seen=()
for host in "${HOSTS[@]}" localhost 127.0.0.1 ::1; do
    host="${host#[}"; host="${host%]}"
    [[ "$host" =~ ^[A-Za-z0-9.:_-]+$ ]] || { echo "make_certs.sh: '$host' is not a host name or address" >&2; exit 2; }
    [ -z "${seen[$host]:-}" ] || continue
    seen[$host]=1
    if [[ "$host" =~ ^[0-9.]+$ || "$host" == *:* ]]; then kind=IP; else kind=DNS; fi
    san+="${san:+,}$kind:$host"
done

umask 077  # keys (and everything else made here) readable by the owner only
mkdir -p "$DIR"
work="$(mktemp -d "$DIR/.make_certs.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# A fresh random serial for each certificate: no serial file to keep.
serial() { echo "0x$(openssl rand -hex 16)"; }

if [ -s "$DIR/ca.crt" ] && [ -s "$DIR/ca.key" ]; then
    echo "keeping the CA in $DIR (ca.crt, ca.key)"
elif [ -e "$DIR/ca.crt" ]; then
    echo "make_certs.sh: $DIR/ca.crt is there but not its key, ca.key, which signs new" \
         "certificates: put ca.key back, or remove ca.crt to start a new CA (every" \
         "service and client then needs the new ca.crt)" >&2
    exit 1
else
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$work/ca.key" -out "$work/ca.crt" -days $((DAYS * 10)) -set_serial "$(serial)" \
        -subj "/CN=marketplace private CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>"$work/openssl.err" \
        || { cat "$work/openssl.err" >&2; exit 1; }
    mv "$work/ca.key" "$DIR/ca.key"
    mv "$work/ca.crt" "$DIR/ca.crt"
    echo "made a CA in $DIR (ca.crt, ca.key)"
fi

cat >"$work/ext.cnf" <<END
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=$san
END
for name in "${SERVICES[@]}"; do
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$work/$name.key" -out "$work/$name.csr" -subj "/CN=$name" \
        2>"$work/openssl.err" || { cat "$work/openssl.err" >&2; exit 1; }
    openssl x509 -req -in "$work/$name.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
        -set_serial "$(serial)" -days "$DAYS" -extfile "$work/ext.cnf" \
        -out "$work/$name.crt" 2>"$work/openssl.err" || { cat "$work/openssl.err" >&2; exit 1; }
done
# The old files are replaced only once every new one is made.
for name in "${SERVICES[@]}"; do
    chmod 600 "$work/$name.key"
    chmod 644 "$work/$name.crt"
    mv "$work/$name.key" "$DIR/$name.key"
    mv "$work/$name.crt" "$DIR/$name.crt"
done
chmod 600 "$DIR/ca.key"
chmod 644 "$DIR/ca.crt"
echo "made ${SERVICES[*]/%/.crt} in $DIR, valid $DAYS days for ${san//,/, }"
