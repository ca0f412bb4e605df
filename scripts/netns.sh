#!/usr/bin/env bash
# Two "hosts" on one machine: Linux network namespaces joined by a veth pair.
#
#   sudo bash scripts/netns.sh up          # create both namespaces and the link (idempotent)
#   sudo bash scripts/netns.sh status      # addresses, routes, rules, link counters (exit 1 if down)
#   sudo bash scripts/netns.sh loss 5      # drop 5 % of the packets each way, then measure it
#   sudo bash scripts/netns.sh loss 0      # remove the drop rule
#   sudo bash scripts/netns.sh measure     # measure the loss each way (UDP datagrams, ping)
#   sudo bash scripts/netns.sh down        # delete both namespaces (idempotent)
#
#   ip netns exec fdl_robot_pc    <command>   # run something on the robot's PC
#   ip netns exec fdl_workstation <command>   # ... or on the workstation
#
# Topology (names and addresses from the environment, defaults shown):
#
#   FDL_NETNS_ROBOT=fdl_robot_pc                     FDL_NETNS_WORKSTATION=fdl_workstation
#   lo, veth0 ${FDL_NETNS_SUBNET}.1/24  <----veth---->  veth0 ${FDL_NETNS_SUBNET}.2/24, lo
#                                                    nftables: tables netdev fdl_netns_router
#                                                    and fdl_netns_loss (FDL_NETNS_LOSS_IN)
#
# Nothing else is in a namespace: no route out of the machine, so the only peer of each
# "host" is the other one; IPv6 is off on veth0 (Fast DDS's transports are IPv4).
#
# Multicast (FDL_NETNS_MULTICAST):
#   router (default)  multicast does not cross veth0 (dropped there both ways, as a router
#                     between two subnets does): multicast discovery (ROS 2's default,
#                     ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET) finds the processes of the same
#                     host only, and the other host must be named: ROS_STATIC_PEERS=<its address>;
#   link              one LAN segment: multicast crosses veth0 and SUBNET discovery suffices.
# In both, 224.0.0.0/4 is routed to lo so that processes of one host find each other.
#
# Packet loss: `tc netem` does not exist on every kernel (this machine's answers "Specified
# qdisc kind is unknown"), so loss comes from nftables (Debian package nftables, installed
# with apt-get when missing). In FDL_NETNS_LOSS_IN (default: the workstation) an ingress rule
# (robot -> workstation) and an egress rule (workstation -> robot) on veth0 each drop an IPv4
# packet when `numgen random mod 10000 < 100 * PCT`, independently per packet, like a lossy
# wire: the sender is not told (a drop in the inet output hook would fail its sendto with
# EPERM); traffic on lo inside a namespace is never touched. `loss` then measures the loss.
set -euo pipefail

ROBOT="${FDL_NETNS_ROBOT:-fdl_robot_pc}"
WORKSTATION="${FDL_NETNS_WORKSTATION:-fdl_workstation}"
SUBNET="${FDL_NETNS_SUBNET:-10.77.0}"
MULTICAST="${FDL_NETNS_MULTICAST:-router}"
LOSS_IN="${FDL_NETNS_LOSS_IN:-$WORKSTATION}"
ROBOT_IP="$SUBNET.1"
WORKSTATION_IP="$SUBNET.2"
DEV=veth0
LOSS_TABLE=fdl_netns_loss
ROUTER_TABLE=fdl_netns_router
UDP_PORT=47999          # measurement datagrams; not a DDS port (7400 + 250 * domain + ...)

die() { echo "netns.sh: $*" >&2; exit 1; }
log() { echo "[netns] $*"; }

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, veth, nftables): run it with sudo"
    command -v ip >/dev/null || die "'ip' (iproute2) not found"
    case "$MULTICAST" in router|link) ;; *) die "FDL_NETNS_MULTICAST must be 'router' or 'link', not '$MULTICAST'" ;; esac
    [ "$LOSS_IN" = "$ROBOT" ] || [ "$LOSS_IN" = "$WORKSTATION" ] \
        || die "FDL_NETNS_LOSS_IN must name one of the two namespaces ($ROBOT, $WORKSTATION)"
}

ns_exists() { ip netns list | awk '{print $1}' | grep -qx -- "$1"; }
in_ns() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }
has_dev() { ns_exists "$1" && in_ns "$1" ip link show "$DEV" >/dev/null 2>&1; }
has_table() { command -v nft >/dev/null && in_ns "$LOSS_IN" nft list table netdev "$1" >/dev/null 2>&1; }

ensure_nft() {
    command -v nft >/dev/null && return 0
    log "installing nftables (apt-get)"
    command -v apt-get >/dev/null || die "nft not found and no apt-get to install it (Debian package nftables)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables >/dev/null; } \
        || die "apt-get install nftables failed"
}

# veth0 rules of one table: "veth_rules TABLE MATCH COUNTER" drops what MATCH selects, both ways
veth_rules() {
    local table="$1" match="$2" name="$3"
    cat <<EOF
table netdev $table {
    counter from_peer {}
    counter from_peer_$name {}
    counter to_peer {}
    counter to_peer_$name {}
    chain ingress {
        type filter hook ingress device "$DEV" priority filter; policy accept;
        meta protocol ip counter name from_peer
        meta protocol ip $match counter name from_peer_$name drop
    }
    chain egress {
        type filter hook egress device "$DEV" priority filter; policy accept;
        meta protocol ip counter name to_peer
        meta protocol ip $match counter name to_peer_$name drop
    }
}
EOF
}

up() {
    local ns
    for ns in "$ROBOT" "$WORKSTATION"; do
        ns_exists "$ns" || ip netns add "$ns" || die "cannot create network namespace '$ns' (ip netns add failed)"
    done
    if ! has_dev "$ROBOT" || ! has_dev "$WORKSTATION"; then    # none, or half a pair: (re)create it
        for ns in "$ROBOT" "$WORKSTATION"; do in_ns "$ns" ip link del "$DEV" 2>/dev/null || true; done
        ip link add "$DEV" netns "$ROBOT" type veth peer name "$DEV" netns "$WORKSTATION" \
            || die "cannot create the veth pair between '$ROBOT' and '$WORKSTATION'"
    fi
    configure "$ROBOT" "$ROBOT_IP"
    configure "$WORKSTATION" "$WORKSTATION_IP"
    if [ "$MULTICAST" = router ]; then
        ensure_nft
        if ! has_table "$ROUTER_TABLE"; then
            veth_rules "$ROUTER_TABLE" "ip daddr 224.0.0.0/4" multicast | in_ns "$LOSS_IN" nft -f - \
                || die "nft refused the multicast rule"
        fi
    elif has_table "$ROUTER_TABLE"; then
        in_ns "$LOSS_IN" nft delete table netdev "$ROUTER_TABLE"
    fi
    wait_running "$ROBOT"
    wait_running "$WORKSTATION"
    if command -v ping >/dev/null && ! has_table "$LOSS_TABLE"; then
        in_ns "$ROBOT" ping -c 1 -W 2 "$WORKSTATION_IP" >/dev/null 2>&1 \
            || die "namespaces created but $ROBOT cannot reach $WORKSTATION_IP"
    fi
    log "up: $ROBOT ($ROBOT_IP) <-> $WORKSTATION ($WORKSTATION_IP), multicast: $MULTICAST"
}

# The kernel reports a link operationally up (IFF_RUNNING, operstate "up") some time after
# `ip link set up` (linkwatch, up to ~1 s), and Fast DDS lists only running interfaces when a
# participant starts: a process started before that announces no address on veth0 and is never
# found from the other host (measured: 0 of 8 fresh links crossed without this wait, 8 of 8 with).
wait_running() {   # wait_running NS: until veth0 is operationally up in NS (5 s at most)
    local ns="$1" i
    for i in $(seq 100); do
        [ "$(in_ns "$ns" cat "/sys/class/net/$DEV/operstate" 2>/dev/null)" = up ] && return 0
        sleep 0.05
    done
    die "$DEV in '$ns' is not operationally up 5 s after 'ip link set up'"
}

configure() {   # configure NS IP: loopback with multicast, address, IPv4 only, link up
    local ns="$1" ip="$2"
    in_ns "$ns" ip link set lo up
    in_ns "$ns" ip link set lo multicast on
    in_ns "$ns" ip addr replace "$ip/24" dev "$DEV"
    in_ns "$ns" sysctl -q -w "net.ipv6.conf.$DEV.disable_ipv6=1" >/dev/null 2>&1 || true
    in_ns "$ns" ip link set "$DEV" up
    in_ns "$ns" ip route replace 224.0.0.0/4 dev lo
}

down() {
    local ns
    for ns in "$ROBOT" "$WORKSTATION"; do
        if ns_exists "$ns"; then
            ip netns del "$ns" || die "cannot delete network namespace '$ns'"
            log "deleted $ns"
        fi
    done
    log "down"
}

current_loss() {   # the PCT of the installed loss rule (0 when none)
    local rules n
    rules=$(in_ns "$LOSS_IN" nft list chain netdev "$LOSS_TABLE" ingress 2>/dev/null | grep ' drop' || true)
    n=$(sed -n 's/.*numgen random mod 10000 < \([0-9]*\).*/\1/p' <<<"$rules" | head -1)
    [ -n "$rules" ] && [ -z "$n" ] && n=10000                # a drop without numgen: 100 %
    awk -v n="${n:-0}" 'BEGIN { printf "%g", n / 100 }'
}

status() {
    local ns state=up
    for ns in "$ROBOT" "$WORKSTATION"; do
        if ! ns_exists "$ns"; then echo "$ns: absent"; state=down; continue; fi
        echo "$ns:"
        in_ns "$ns" ip -brief addr show | sed 's/^/  /'
        in_ns "$ns" ip route show table main | sed 's/^/  route /'
        if has_dev "$ns"; then in_ns "$ns" ip -s link show "$DEV" | sed 's/^/  /'; else state=down; fi
    done
    if ns_exists "$LOSS_IN"; then
        if has_table "$ROUTER_TABLE"; then echo "multicast: router (dropped on $DEV in $LOSS_IN)"; else echo "multicast: link"; fi
        if has_table "$LOSS_TABLE"; then
            echo "loss rule in $LOSS_IN: $(current_loss) % each way"
            in_ns "$LOSS_IN" nft list counters table netdev "$LOSS_TABLE" \
                | awk '$1 == "counter" { name = $2 } $1 == "packets" { printf "  %-18s %s packets\n", name, $2 }'
        else
            echo "loss rule: none"
        fi
    fi
    [ "$state" = up ]
}

loss() {
    local pct="${1:-}" threshold match
    [[ "$pct" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "usage: netns.sh loss PCT [--no-measure] (0..100, e.g. 5 or 0.5)"
    threshold=$(awk -v p="$pct" 'BEGIN { t = int(p * 100 + 0.5); if (t > 10000) exit 1; print t }') \
        || die "loss must be between 0 and 100 %"
    ns_exists "$LOSS_IN" || die "namespace '$LOSS_IN' does not exist: run 'netns.sh up' first"
    ensure_nft
    in_ns "$LOSS_IN" nft delete table netdev "$LOSS_TABLE" 2>/dev/null || true
    if [ "$threshold" -eq 0 ]; then
        log "loss 0: drop rule removed from $LOSS_IN"
        return 0
    fi
    match="numgen random mod 10000 < $threshold"
    [ "$threshold" -lt 10000 ] || match=""                   # 100 %: every packet
    veth_rules "$LOSS_TABLE" "$match" dropped | in_ns "$LOSS_IN" nft -f - || die "nft refused the drop rule"
    log "loss $pct %: drop rule in $LOSS_IN on $DEV, both directions"
    [ "${2:-}" = "--no-measure" ] || measure
}

udp_count() {   # udp_count FROM_NS TO_NS TO_IP N: how many of N datagrams arrive, one way
    local from="$1" to="$2" ip="$3" n="$4" rx_pid got
    got=$(mktemp)
    in_ns "$to" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(3.0)
seen = set()
try:
    while True:
        data = s.recv(64)
        if data == b"end":
            break
        seen.add(data)
        s.settimeout(1.0)
except socket.timeout:
    pass
print(len(seen))
' "$ip" "$UDP_PORT" >"$got" &
    rx_pid=$!
    sleep 0.3
    in_ns "$from" python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[3])):
    s.sendto(b"%d" % i, (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.0005)
time.sleep(0.2)
for _ in range(50):    # the end marker may be dropped too: send it many times
    s.sendto(b"end", (sys.argv[1], int(sys.argv[2])))
' "$ip" "$UDP_PORT" "$n"
    wait "$rx_pid" || true
    cat "$got"
    rm -f "$got"
}

measure() {
    local n="${1:-2000}" pings="${2:-200}" r w out tx rx pct
    ns_exists "$ROBOT" && ns_exists "$WORKSTATION" || die "namespaces missing: run 'netns.sh up' first"
    command -v python3 >/dev/null || die "python3 is needed to count UDP datagrams"
    r=$(udp_count "$ROBOT" "$WORKSTATION" "$WORKSTATION_IP" "$n")
    w=$(udp_count "$WORKSTATION" "$ROBOT" "$ROBOT_IP" "$n")
    awk -v n="$n" -v r="$r" -v w="$w" -v a="$ROBOT" -v b="$WORKSTATION" 'BEGIN {
        printf "[netns] measured loss %s -> %s: %.1f %% (%d of %d UDP datagrams lost)\n", a, b, 100 * (n - r) / n, n - r, n
        printf "[netns] measured loss %s -> %s: %.1f %% (%d of %d UDP datagrams lost)\n", b, a, 100 * (n - w) / n, n - w, n }'
    if command -v ping >/dev/null; then
        out=$(in_ns "$ROBOT" ping -q -n -c "$pings" -i 0.005 -W 1 "$WORKSTATION_IP" 2>&1 || true)
        tx=$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1/p' <<<"$out")
        rx=$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\2/p' <<<"$out")
        pct=$(current_loss)
        awk -v tx="${tx:-0}" -v rx="${rx:-0}" -v p="$pct" 'BEGIN { if (tx == 0) exit
            printf "[netns] ping round trip: %.1f %% lost (%d of %d; %g %% each way -> %.1f %% expected)\n",
                   100 * (tx - rx) / tx, tx - rx, tx, p, 100 * (1 - (1 - p / 100) ^ 2) }'
    fi
}

cmd="${1:-}"
[ -n "$cmd" ] || usage 2
shift
case "$cmd" in
    up) need_root; up ;;
    down) need_root; down ;;
    status) need_root; status ;;
    loss) need_root; loss "$@" ;;
    measure) need_root; measure "$@" ;;
    -h|--help|help) usage 0 ;;
    *) echo "netns.sh: unknown command '$cmd'" >&2; usage 2 ;;
esac
