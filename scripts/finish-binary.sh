#!/bin/sh
# Turns a podpath build into the binary the image ships. The Dockerfile's
# builder stage runs it, and so does ci/runtime-matrix.sh, so CI tests the
# binary exactly as the image carries it.
#
#   scripts/finish-binary.sh target/release/podpath OUTDIR
#
# OUTDIR/podpath        no debug info, no symbol table (about 30 MB -> 4 MB
#                       for a release build), a GNU debuglink to podpath.debug,
#                       and the file capability cap_net_raw+p.
# OUTDIR/podpath.debug  the debug info and symbols (objcopy --only-keep-debug):
#                       what gdb, perf and addr2line need to read a core dump
#                       or a profile of the shipped binary.
#
# +p, not +ep: with the effective flag the kernel refuses to execve the binary
# (EPERM) when the container's bounding set lacks NET_RAW, so the sidecar would
# never start; without it NET_RAW lands in the permitted set and `podpath run`
# raises it to effective itself (src/capture/privilege.rs).
# The capability is set last: objcopy writes a new file, and a new file has no
# extended attributes (the capability lives in security.capability).
# Needs objcopy (binutils), setcap and getcap (libcap2-bin), and root for setcap.
set -eu

in=${1:?usage: scripts/finish-binary.sh PATH/TO/podpath OUTDIR}
out=${2:?usage: scripts/finish-binary.sh PATH/TO/podpath OUTDIR}
mkdir -p "$out"
objcopy --only-keep-debug "$in" "$out/podpath.debug"
objcopy --strip-all --add-gnu-debuglink="$out/podpath.debug" "$in" "$out/podpath"
chmod 0755 "$out/podpath"
chmod 0644 "$out/podpath.debug"
setcap cap_net_raw+p "$out/podpath"
getcap "$out/podpath" | grep -q 'cap_net_raw=p$' || {
    echo "finish-binary: the file capability did not stick on $out/podpath" >&2
    exit 1
}
