#!/usr/bin/env bash
# Runtime matrix: starts podpath with real OCI runtimes (runc, crun) from an
# OCI bundle, configured the way each container runtime configures a
# container from the shipped securityContext (runAsUser 65532, drop ALL,
# add NET_RAW, allowPrivilegeEscalation), and records which combinations
# capture and the cause podpath names when it cannot.
#
#   ci/runtime-matrix.sh PATH/TO/podpath
#
# The bundle is built as the image is: scripts/finish-binary.sh strips the
# binary (checked to run: `podpath --version`) and sets cap_net_raw+p; the
# result goes into an image layer (tar with the security.capability xattr in
# its PAX headers, as BuildKit writes it), unpacked once keeping the xattr
# (the rootfs "with file capability") and once as a tool that drops extended
# attributes would ("without"). Each run gets a fresh network namespace
# (pp-rm-<pid>-<n>, lo up) named in config.json, uid/gid 65532, a read-only
# root, the capability sets of one profile and noNewPrivileges on or off:
#
#   cri         bounding, permitted, effective = NET_RAW: containerd >= 1.6.2,
#               CRI-O >= 1.24, Docker Engine >= 25.0 (moby#45511)
#   cri-inh     the same plus inheritable: containerd < 1.6.2 and CRI-O < 1.24
#               (before CVE-2022-24769 / CVE-2022-27652)
#   docker-pre  bounding = NET_RAW only: Docker Engine before moby#45511
#               (issue moby#45491), e.g. through cri-dockerd
#   no-add      no NET_RAW anywhere (capabilities.add forgotten)
#   seccomp     cri, and a seccomp filter that refuses socket(AF_PACKET)
#
# "Captures": a scrape of /metrics inside the namespace shows
# podpath_capture_up{interface="lo"} 1. Builds where podpath_capture_up has
# no interface label and podpath exits when capture is denied are read the
# older way: podpath_capture_up 1 and /readyz 200 mean capturing; an exit
# naming the cause means not. Every row is checked against the outcome the
# kernel's rules predict (src/capture/privilege.rs) and, when podpath cannot
# capture, against the cause label in its message ("[cause=...") and the
# remedy the message must name.
#
# Environment:
#   RUNTIMES       runtimes to run (default "runc crun"; each must be installed)
#   MATRIX_TABLE   also write the result table (Markdown) to this file
#   RUN_TIMEOUT    seconds to wait for one container's verdict (default 10)
# Needs root, iproute2, curl, python3, tar, objcopy, setcap/getcap.
set -euo pipefail

bin=${1:?usage: ci/runtime-matrix.sh PATH/TO/podpath}
runtimes=${RUNTIMES:-runc crun}
run_timeout=${RUN_TIMEOUT:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/pp-matrix.XXXXXX)
chmod 0755 "$work"
port=9809
started=$SECONDS

current_rt="" current_id="" current_ns="" current_pid=""
# rt RUNTIME ARGS...: the runtime with its own state directory. crun runs
# without cgroups (they are not what this test is about), and on a hybrid
# cgroup v1/v2 host, which crun refuses when the v2 hierarchy holds a
# controller, in a mount namespace of its own without that hierarchy.
rt() {
    local name=$1
    shift
    case "$name" in
        crun)
            if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
                unshare --mount --propagation private sh -c \
                    'umount -l /sys/fs/cgroup/unified && exec "$@"' sh \
                    crun --cgroup-manager=disabled --root "$work/state-crun" "$@"
            else
                crun --cgroup-manager=disabled --root "$work/state-crun" "$@"
            fi
            ;;
        *) "$name" --root "$work/state-$name" "$@" ;;
    esac
}
cleanup_run() {
    if [ -n "$current_id" ]; then
        rt "$current_rt" kill "$current_id" KILL >/dev/null 2>&1 || true
    fi
    if [ -n "$current_pid" ]; then
        wait "$current_pid" 2>/dev/null || true
    fi
    if [ -n "$current_id" ]; then
        rt "$current_rt" delete -f "$current_id" >/dev/null 2>&1 || true
    fi
    if [ -n "$current_ns" ]; then
        ip netns del "$current_ns" 2>/dev/null || true
    fi
    current_id="" current_ns="" current_pid=""
}
cleanup() {
    cleanup_run
    rm -rf "$work"
}
trap cleanup EXIT
# A time box (timeout in .ci/run) ends it with SIGTERM: clean up then too.
trap 'exit 143' TERM INT

for rt in $runtimes; do
    command -v "$rt" >/dev/null || { echo "FAIL: $rt is not installed (apt-get install $rt)"; exit 1; }
    echo "$rt: $("$rt" --version | head -1)"
done

echo "== the image's binary"
"$root/scripts/finish-binary.sh" "$bin" "$work/out"
size_in=$(stat -c %s "$bin")
size_out=$(stat -c %s "$work/out/podpath")
version=$("$work/out/podpath" --version) || { echo "FAIL: the stripped binary does not run"; exit 1; }
echo "stripped: $size_in -> $size_out bytes, runs: $version; $(getcap "$work/out/podpath")"
# (.debug_gdb_scripts is loaded data, not debug info: it stays.)
if readelf -SW "$work/out/podpath" | grep -qE ' \.(debug_info|debug_line|symtab) '; then
    echo "FAIL: the stripped binary still has debug sections or a symbol table"
    exit 1
fi

# The image layer, as BuildKit writes it: the capability as a PAX xattr record.
mkdir -p "$work/layer/usr/local/bin"
cp --preserve=mode,xattr "$work/out/podpath" "$work/layer/usr/local/bin/podpath"
tar --xattrs --xattrs-include='security.capability' -C "$work/layer" -cf "$work/layer.tar" usr
for variant in cap nocap; do
    rootfs=$work/rootfs-$variant
    mkdir -p "$rootfs"/{proc,dev,sys,tmp,etc}
    if [ "$variant" = cap ]; then
        # containerd and BuildKit restore security.capability from the layer.
        tar --xattrs --xattrs-include='security.capability' -xf "$work/layer.tar" -C "$rootfs"
    else
        # A tool that drops extended attributes (plain tar here).
        tar -xf "$work/layer.tar" -C "$rootfs"
    fi
    # The shared libraries the binary needs (distroless/cc has the same).
    ldd "$work/out/podpath" | grep -oE '/[^ ]+' | while read -r lib; do
        cp -L --parents "$lib" "$rootfs"
    done
    echo "65532:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" > "$rootfs/etc/passwd"
    chmod -R go+rX "$rootfs"
done
getcap "$work/rootfs-cap/usr/local/bin/podpath" | grep -q cap_net_raw \
    || { echo "FAIL: the file capability did not survive the layer"; exit 1; }
if [ -n "$(getcap "$work/rootfs-nocap/usr/local/bin/podpath")" ]; then
    echo "FAIL: plain tar kept the file capability: the 'without' rows would prove nothing"
    exit 1
fi
echo "layer: capability kept by tar --xattrs-include=security.capability, dropped by plain tar"

# config.json for one run: profile, no_new_privs (0/1), rootfs, netns path.
write_config() {
    PROFILE=$1 NNP=$2 ROOTFS=$3 NETNS=$4 PORT=$port python3 - <<'EOF'
import json, os
raw = ["CAP_NET_RAW"]
sets = {
    "cri":        dict(bounding=raw, permitted=raw, effective=raw, inheritable=[]),
    "cri-inh":    dict(bounding=raw, permitted=raw, effective=raw, inheritable=raw),
    "docker-pre": dict(bounding=raw, permitted=[], effective=[], inheritable=[]),
    "no-add":     dict(bounding=[], permitted=[], effective=[], inheritable=[]),
    "seccomp":    dict(bounding=raw, permitted=raw, effective=raw, inheritable=[]),
}[os.environ["PROFILE"]]
sets["ambient"] = []
config = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False,
        "user": {"uid": 65532, "gid": 65532},
        "args": ["/usr/local/bin/podpath", "run"],
        "env": [
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "HOME=/home/nonroot",
            "PODPATH_LISTEN=127.0.0.1:" + os.environ["PORT"],
            "POD_NAME=runtime-matrix",
            "POD_NAMESPACE=ci",
        ],
        "cwd": "/",
        "capabilities": sets,
        "noNewPrivileges": os.environ["NNP"] == "1",
    },
    "root": {"path": os.environ["ROOTFS"], "readonly": True},
    "hostname": "podpath",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
    ],
    "linux": {
        "namespaces": [
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
            {"type": "network", "path": os.environ["NETNS"]},
        ],
        "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}
if os.environ["PROFILE"] == "seccomp":
    # socket(AF_PACKET = 17, ...) fails with EPERM; everything else is allowed.
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": 17, "op": "SCMP_CMP_EQ"}]}],
    }
print(json.dumps(config, indent=1))
EOF
}

# The outcome the kernel's rules predict for uid 65532 (see the header):
# "captures", or the cause podpath names. "not started" (execve refused) is
# what a +ep binary gets where the bounding set lacks NET_RAW: the image's
# binary is +p so that it always starts, and raises NET_RAW itself.
expected() {
    local profile=$1 nnp=$2 fcap=$3
    case "$profile" in
        cri | cri-inh) [ "$fcap" = 1 ] && echo captures || echo no_file_capability ;;
        docker-pre)
            if [ "$fcap" = 0 ]; then echo no_file_capability
            elif [ "$nnp" = 1 ]; then echo not_granted_no_new_privs
            else echo captures; fi ;;
        no-add) echo not_in_bounding_set ;;
        seccomp) echo denied_by_policy ;;
    esac
}

# A phrase podpath's message must hold for each cause: the remedy it names.
remedy_phrase() {
    case "$1" in
        not_granted_no_new_privs) echo "set allowPrivilegeEscalation: true" ;;
        no_file_capability) echo "the binary has no file capability" ;;
        not_in_bounding_set) echo 'capabilities.add: ["NET_RAW"]' ;;
        denied_by_policy) echo "seccompProfile" ;;
    esac
}

scrape() {
    ip netns exec "$current_ns" curl -fsS --max-time 1 "http://127.0.0.1:$port/$1" 2>/dev/null
}

# Runs one container; sets `outcome` and `sets`, the container process's
# CapPrm/CapEff (read from /proc, or from podpath's message). Not run in a
# subshell, so that the EXIT trap knows what to tear down.
run_one() {
    local rt=$1 profile=$2 nnp=$3 fcap=$4 n=$5
    local bundle=$work/bundle-$n rootfs=$work/rootfs-nocap
    [ "$fcap" = 1 ] && rootfs=$work/rootfs-cap
    current_rt=$rt current_id="pp-rm-$$-$n" current_ns="pp-rm-$$-$n"
    ip netns add "$current_ns"
    ip netns exec "$current_ns" ip link set lo up
    mkdir -p "$bundle"
    write_config "$profile" "$nnp" "$rootfs" "/var/run/netns/$current_ns" > "$bundle/config.json"
    rt "$rt" run --bundle "$bundle" "$current_id" \
        > "$bundle/log" 2>&1 < /dev/null &
    current_pid=$!
    local metrics pid deadline=$((SECONDS + run_timeout))
    outcome="" sets=""
    while [ -z "$outcome" ] && [ "$SECONDS" -lt "$deadline" ]; do
        if metrics=$(scrape metrics); then
            if grep -qE '^podpath_capture_up\{[^}]*interface="lo"[^}]*\} 1' <<< "$metrics"; then
                outcome=captures
            elif grep -qE '^podpath_capture_up 1( |$)' <<< "$metrics" && scrape readyz > /dev/null; then
                outcome=captures
            elif grep -qE '^podpath_capture_up\{[^}]*interface="lo"[^}]*\} 0' <<< "$metrics" \
                && grep -q 'cause=' "$bundle/log"; then
                outcome=$(grep -o 'cause=[a-z_]*' "$bundle/log" | head -1)
                outcome=${outcome#cause=}
                # Not capturing must not harm the pod: liveness stays 200.
                scrape healthz > /dev/null || outcome="$outcome, /healthz not 200"
            fi
            if [ "$outcome" = captures ]; then
                pid=$(rt "$rt" state "$current_id" 2>/dev/null \
                    | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])' 2>/dev/null || true)
                if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
                    sets="CapPrm=$(awk '/^CapPrm/ {print $2}' "/proc/$pid/status") CapEff=$(awk '/^CapEff/ {print $2}' "/proc/$pid/status")"
                fi
            fi
        elif ! kill -0 "$current_pid" 2>/dev/null; then
            if grep -q 'cause=' "$bundle/log"; then
                outcome=$(grep -o 'cause=[a-z_]*' "$bundle/log" | head -1)
                outcome=${outcome#cause=}
            elif grep -qi 'operation not permitted' "$bundle/log"; then
                # The runtime's execve of podpath failed with EPERM.
                outcome="not started"
            else
                outcome="exited: $(tail -n 1 "$bundle/log")"
            fi
        else
            sleep 0.1
        fi
    done
    if [ -z "$sets" ] && grep -q 'CapPrm=' "$bundle/log"; then
        sets=$(grep -oE 'CapPrm=[0-9a-f]+ CapEff=[0-9a-f]+' "$bundle/log" | head -1)
    fi
    [ -n "$outcome" ] || outcome="no verdict in ${run_timeout}s"
    cleanup_run
}

describe() {
    case "$1" in
        cri) echo "containerd >= 1.6.2, CRI-O >= 1.24, Docker >= 25.0: NET_RAW in bounding, permitted, effective" ;;
        cri-inh) echo "containerd < 1.6.2, CRI-O < 1.24: the same plus inheritable" ;;
        docker-pre) echo "Docker Engine before 25.0 (moby#45491), e.g. cri-dockerd: NET_RAW in bounding only" ;;
        no-add) echo "capabilities.add without NET_RAW: no NET_RAW anywhere" ;;
        seccomp) echo "containerd/CRI-O sets, seccomp refusing socket(AF_PACKET)" ;;
    esac
}

echo "== runs (uid 65532, read-only root, a fresh network namespace each)"
# One table row per combination, one column per runtime.
header="| profile | no_new_privs | file capability |"
rule="| --- | --- | --- |"
for rt in $runtimes; do
    header+=" $rt |"
    rule+=" --- |"
done
table="$header CapPrm / CapEff after execve |"$'\n'"$rule --- |"
n=0
failures=0
rows=0
captured=0
for profile in cri cri-inh docker-pre no-add seccomp; do
    for nnp in 1 0; do
        for fcap in 1 0; do
            # The seccomp row shows the one cause no capability set explains.
            if [ "$profile" = seccomp ] && { [ "$nnp" = 0 ] || [ "$fcap" = 0 ]; }; then
                continue
            fi
            want=$(expected "$profile" "$nnp" "$fcap")
            fc=$([ "$fcap" = 1 ] && echo "cap_net_raw+p" || echo "none (xattr dropped)")
            on=$([ "$nnp" = 1 ] && echo "on" || echo "off")
            row="| $profile | $on | $fc |"
            row_sets=""
            for rt in $runtimes; do
                n=$((n + 1))
                rows=$((rows + 1))
                t0=$(date +%s%N)
                run_one "$rt" "$profile" "$nnp" "$fcap" "$n"
                ms=$((($(date +%s%N) - t0) / 1000000))
                status=ok
                phrase=$(remedy_phrase "$outcome")
                if [ "$outcome" != "$want" ]; then
                    status=FAIL
                elif [ -n "$phrase" ] && ! grep -qF -- "$phrase" "$work/bundle-$n/log"; then
                    status=FAIL
                    want="$want, with \"$phrase\" in the message"
                fi
                [ "$status" = ok ] || failures=$((failures + 1))
                [ "$outcome" = captures ] && captured=$((captured + 1))
                printf '%-4s %-5s %-10s nnp=%-3s fcap=%-22s %-26s %5d ms  %s\n' \
                    "$status" "$rt" "$profile" "$on" "$fc" "$outcome" "$ms" "$sets"
                if [ "$status" = FAIL ]; then
                    echo "      expected: $want; the container's output:"
                    sed 's/^/      /' "$work/bundle-$n/log" | tail -n 5
                fi
                case "$outcome" in
                    captures) row+=" **captures** |" ;;
                    "not started") row+=" no: execve refused, the container does not start |" ;;
                    *) row+=" no: \`$outcome\` |" ;;
                esac
                row_sets=${row_sets:-$sets}
            done
            table+=$'\n'"$row ${row_sets:-—} |"
        done
    done
done

echo
echo "Profiles:"
for profile in cri cri-inh docker-pre no-add seccomp; do
    echo "  $profile: $(describe "$profile")"
done
echo
echo "$table"
if [ -n "${MATRIX_TABLE:-}" ]; then
    echo "$table" > "$MATRIX_TABLE"
fi
echo
echo "runtime matrix: $rows runs, $captured capture, $failures differ from the expected outcome ($((SECONDS - started)) s)"
[ "$failures" -eq 0 ]
