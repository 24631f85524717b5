#!/usr/bin/env bash
# Captures real IKEv2 messages from strongSwan for the codec's tests (controlplane/ike/tests/codec.rs).
#
# Two network namespaces joined by a veth pair: a strongSwan initiator (192.0.2.10) and a
# strongSwan responder (192.0.2.1), each charon with a private /run, its own strongswan.conf and
# vici socket (see /work/shared/LAB.md). The initiator offers three IKE proposals and uses a small
# fragment_size so that its IKE_AUTH request goes out as RFC 7383 fragments (SKF); the responder
# answers unfragmented (SK). dumpcap records UDP 500/4500 on the initiator's veth. Afterwards:
#   ike.pcap            the capture
#   NN-<exchange>-<i|r>[-fK].bin   each IKE datagram's UDP payload (the non-ESP marker of port
#                       4500 removed), NN = frame number, i = request, r = response
#   tshark.json         `tshark -T json` of the IKE layer of every frame: the tests' oracle
#
# Needs root, strongSwan (charon, swanctl), tshark/dumpcap, iproute2. Namespaces, processes and the
# temporary directory are removed on exit, also on failure. Regenerate:
#   sudo controlplane/ike/tests/data/capture.sh
set -euo pipefail

out=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/esprit-ike-capture.XXXXXX)
cli=esprit-codec-cli-$$
srv=esprit-codec-srv-$$
pids=()

cleanup() {
    set +e
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for ns in "$cli" "$srv"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
    done
    sleep 0.5
    for ns in "$cli" "$srv"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

ip netns add "$cli"
ip netns add "$srv"
ip -n "$cli" link add vc type veth peer name vs netns "$srv"
ip -n "$cli" addr add 192.0.2.10/24 dev vc
ip -n "$srv" addr add 192.0.2.1/24 dev vs
# The responder's side of the tunnel (local_ts): kernel-libipsec routes the virtual IP from it.
ip -n "$srv" addr add 10.99.0.1/32 dev lo
for ns in "$cli" "$srv"; do
    ip -n "$ns" link set lo up
done
ip -n "$cli" link set vc up
ip -n "$srv" link set vs up
ip netns exec "$cli" ethtool -K vc tx off rx off >/dev/null 2>&1 || true
ip netns exec "$srv" ethtool -K vs tx off rx off >/dev/null 2>&1 || true

# $1 = instance name, $2 = extra charon settings
instance() {
    local d=$work/$1
    mkdir -p "$d/run" "$d/swanctl/conf.d"
    cat >"$d/strongswan.conf" <<CONF
charon {
    load = random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 kdf pem pkcs1 pkcs8 x509 pubkey constraints revocation kernel-libipsec kernel-netlink socket-default vici
    plugins {
        vici {
            socket = unix://$d/run/charon.vici
        }
    }
    filelog {
        log {
            path = $d/charon.log
            default = 1
            ike = 4
            enc = 1
        }
    }
    retransmit_tries = 2
    $2
}
CONF
}

instance cli "fragment_size = 300"
instance srv ""

cat >"$work/cli/swanctl/swanctl.conf" <<'CONF'
connections {
    rw {
        remote_addrs = 192.0.2.1
        version = 2
        proposals = aes256-sha256-x25519, aes128gcm16-prfsha256-ecp256, aes128-sha1-modp2048
        fragmentation = yes
        vips = 0.0.0.0
        local {
            auth = psk
            id = client@esprit.test
        }
        remote {
            auth = psk
            id = gw.esprit.test
        }
        children {
            net {
                remote_ts = 10.99.0.0/16
                esp_proposals = aes128gcm16
            }
        }
    }
}
secrets {
    ike-rw {
        id-1 = client@esprit.test
        id-2 = gw.esprit.test
        secret = "esprit codec capture, not a real secret"
    }
}
CONF

cat >"$work/srv/swanctl/swanctl.conf" <<'CONF'
connections {
    rw {
        local_addrs = 192.0.2.1
        version = 2
        proposals = aes256-sha256-x25519
        fragmentation = yes
        pools = pool4
        local {
            auth = psk
            id = gw.esprit.test
        }
        remote {
            auth = psk
            id = client@esprit.test
        }
        children {
            net {
                local_ts = 10.99.0.0/16
                esp_proposals = aes128gcm16
            }
        }
    }
}
pools {
    pool4 {
        addrs = 10.99.1.0/24
    }
}
secrets {
    ike-rw {
        id-1 = client@esprit.test
        id-2 = gw.esprit.test
        secret = "esprit codec capture, not a real secret"
    }
}
CONF

start_charon() {
    local ns=$1 d=$work/$2
    STRONGSWAN_CONF=$d/strongswan.conf ip netns exec "$ns" \
        sh -c "mount --bind '$d/run' /run && exec /usr/lib/ipsec/charon" >"$d/stdout" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do
        [ -S "$d/run/charon.vici" ] && return 0
        sleep 0.1
    done
    echo "charon in $ns did not start; its log:" >&2
    cat "$d/stdout" "$d/charon.log" >&2 || true
    return 1
}

swan() {
    local d=$work/$1
    shift
    SWANCTL_DIR=$d/swanctl STRONGSWAN_CONF=$d/strongswan.conf swanctl "$@" --uri "unix://$d/run/charon.vici"
}

ip netns exec "$cli" dumpcap -q -i vc -f "udp port 500 or udp port 4500" -w "$work/ike.pcap" 2>"$work/dumpcap.err" &
pids+=($!)
for _ in $(seq 50); do
    [ -s "$work/ike.pcap" ] && break
    sleep 0.1
done

start_charon "$srv" srv
start_charon "$cli" cli
swan srv --load-all >/dev/null 2>&1
swan cli --load-all >/dev/null 2>&1
if ! swan cli --initiate --child net --timeout 15; then
    echo "initiate failed; the responder's log:" >&2
    grep -v '^\s*$' "$work/srv/charon.log" | tail -40 >&2
    exit 1
fi
swan cli --list-sas
swan cli --terminate --ike rw --timeout 10
sleep 1
kill "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true

# The IKE SA's keys, from the initiator's log (`ike = 4` prints them): throwaway lab keys
# that let the tests (and tshark) decrypt the IKE_AUTH and INFORMATIONAL messages.
awk '/Sk_(ai|ar|ei|er) secret =>/ { name = tolower($2); left = $5; hex = ""; next }
     left > 0 { for (i = 3; i <= 18 && i <= NF && left > 0; i++) { hex = hex tolower($i); left-- }
                if (left == 0) print name, hex }' "$work/cli/charon.log" >"$work/keys"
[ "$(wc -l <"$work/keys")" = 4 ] || { echo "IKE keys not found in the initiator's log" >&2; exit 1; }
key() { awk -v k="$1" '$1 == k { print $2 }' "$work/keys"; }

rm -f "$out"/[0-9]*-*.bin
cp "$work/ike.pcap" "$out/ike.pcap"
spi_i=$(tshark -r "$out/ike.pcap" -Y isakmp -T fields -e isakmp.ispi | tr -d : | head -1)
spi_r=$(tshark -r "$out/ike.pcap" -Y isakmp -T fields -e isakmp.rspi | tr -d : | grep -v '^0*$' | head -1)
{
    echo "# The captured IKE SA: AES-CBC-256 (ENCR 12, key 256), HMAC-SHA2-256-128 (INTEG 12)."
    echo "spi_i $spi_i"
    echo "spi_r $spi_r"
    cat "$work/keys"
} >"$out/ike-keys.txt"
# Wireshark's UAT syntax: byte fields in bare hex, enumerations quoted.
uat="$spi_i,$spi_r,$(key sk_ei),$(key sk_er),\"AES-CBC-256 [RFC3602]\""
uat="$uat,$(key sk_ai),$(key sk_ar),\"HMAC_SHA2_256_128 [RFC4868]\""

# One line per IKE datagram: frame, UDP ports, exchange type, flags, fragment number, payload.
tshark -r "$out/ike.pcap" -Y isakmp -T fields -E separator=, -E aggregator=/ \
    -e frame.number -e udp.dstport -e udp.srcport -e isakmp.exchangetype -e isakmp.flags \
    -e isakmp.frag.number -e udp.payload |
    while IFS=, read -r frame dport sport exch flags frag payload; do
        case $exch in
        34) name=ike_sa_init ;;
        35) name=ike_auth ;;
        36) name=create_child_sa ;;
        37) name=informational ;;
        *) name=exch$exch ;;
        esac
        if (((flags & 0x20) != 0)); then dir=r; else dir=i; fi
        suffix=
        if [ -n "$frag" ]; then suffix=-f${frag%%/*}; fi
        if [ "$dport" = 4500 ] || [ "$sport" = 4500 ]; then payload=${payload:8}; fi
        printf '%s' "$payload" | xxd -r -p >"$out/$(printf %02d "$frame")-$name-$dir$suffix.bin"
    done
# The oracle: tshark's dissection of every IKE frame, decrypted with the keys above, duplicate
# keys merged into arrays.
tshark -r "$out/ike.pcap" -Y isakmp -o "uat:ikev2_decryption_table:$uat" \
    -T json -J "frame udp isakmp" --no-duplicate-keys >"$out/tshark.json"
ls -l "$out"
