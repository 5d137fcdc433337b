//! Why the kernel refused the capture socket, and what to change.
//!
//! `socket(AF_PACKET)` needs CAP_NET_RAW in the effective set. A container
//! runtime sets the process's capability sets, switches to the container's
//! user and execs podpath; execve then recomputes them (capabilities(7)):
//!
//! ```text
//! P'(permitted) = (P(inheritable) & F(inheritable)) | (F(permitted) & P(bounding)) | P'(ambient)
//! P'(effective) = F(effective) ? P'(permitted) : P'(ambient)
//! ```
//!
//! where F is the binary's file capability (`security.capability`; for uid 0
//! every capability counts as file-permitted). Under no_new_privs
//! (`allowPrivilegeEscalation: false`) P'(permitted) is also cut to what
//! P(permitted) held before execve. Kubernetes sets no ambient or
//! inheritable capability, so for a non-root user only the file capability
//! `cap_net_raw+p` gives podpath NET_RAW, and with no_new_privs only if the
//! runtime had put NET_RAW in the permitted set. containerd, CRI-O and Docker
//! Engine 25.0+ (and 24.0 with the backport of moby#45511) put an added
//! capability in the bounding, permitted and effective sets; Docker Engine
//! before moby#45511 (as used through cri-dockerd) in the bounding set only.
//! `ci/runtime-matrix.sh` runs each of these with runc and crun and checks
//! the cause named here.
//!
//! The image's binary carries `cap_net_raw+p`, without the effective flag.
//! With the flag, the kernel refuses execve of a binary whose file-permitted
//! capabilities the bounding set cuts (EPERM, "insufficient to execute
//! correctly"): where the container does not add NET_RAW, podpath would not
//! even start, and a sidecar that never starts holds the app back. Without
//! the flag execve succeeds, NET_RAW lands in the permitted set only, and
//! [`raise_net_raw`] makes it effective at start ([`raise_plan`] decides).
//!
//! After execve the process sees only the result, so the cause is read from
//! the sets left (`/proc/self/status`), no_new_privs, and the binary's own
//! file capability. [`diagnose`] is the pure decision over those facts.

use std::fmt;

/// CAP_NET_RAW's bit in the capability sets (<linux/capability.h>).
pub const CAP_NET_RAW: u8 = 13;

/// A capability set as `/proc/<pid>/status` shows it (one bit per capability).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSet(pub u64);

impl CapSet {
    pub fn has(self, cap: u8) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }
}

/// The capability state of a process after execve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessCaps {
    pub euid: u32,
    pub inheritable: CapSet,
    pub permitted: CapSet,
    pub effective: CapSet,
    pub bounding: CapSet,
    pub ambient: CapSet,
    pub no_new_privs: bool,
    /// A seccomp filter is installed (`Seccomp: 2`).
    pub seccomp_filter: bool,
}

/// The executable's file capability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileCaps {
    /// No `security.capability` attribute.
    None,
    Set {
        permitted: CapSet,
        inheritable: CapSet,
        /// The effective flag: the permitted capabilities become effective
        /// at execve (`+ep`).
        effective: bool,
        /// The root user id of the user namespace the capability was
        /// written for (revision 3 only).
        rootid: Option<u32>,
    },
    /// Could not be read or decoded; the text says why.
    Unknown(String),
}

/// Why `/proc/self/status` could not be read.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatusError {
    #[error("/proc/self/status has no {0} line")]
    Missing(&'static str),
    #[error("/proc/self/status: {field} is not a number: {value:?}")]
    Invalid { field: &'static str, value: String },
}

/// Why a `security.capability` value could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileCapsError {
    #[error("security.capability: {len} bytes, too short for revision {revision}")]
    Short { len: usize, revision: u8 },
    #[error("security.capability: unknown revision {0:#x}")]
    Revision(u32),
}

/// What kept CAP_NET_RAW from podpath. `as_str` is a stable label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// NET_RAW is not in the bounding set: the container does not add it.
    NotInBoundingSet,
    /// In the bounding set, not permitted, no_new_privs set, and the file
    /// capability holds NET_RAW: the runtime left the permitted set empty
    /// (Docker Engine before moby#45511) and no_new_privs stopped the file
    /// capability.
    NotGrantedNoNewPrivs,
    /// In the bounding set, not permitted, and the binary has no file
    /// capability (an image tool dropped the extended attribute).
    NoFileCapability,
    /// The binary's file capability does not hold NET_RAW.
    FileCapabilityWithoutNetRaw,
    /// Bounding set and file capability both hold NET_RAW, no_new_privs is
    /// off, and still execve did not grant it.
    FileCapabilityIgnored,
    /// In the bounding set, not permitted, and the file capability could
    /// not be read: one of the two causes above it.
    NotPermitted,
    /// Permitted but not effective.
    NotEffective,
    /// Effective, and still refused: seccomp or a security module.
    DeniedByPolicy,
    /// The process's capability sets could not be read.
    Unknown,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::NotInBoundingSet => "not_in_bounding_set",
            Cause::NotGrantedNoNewPrivs => "not_granted_no_new_privs",
            Cause::NoFileCapability => "no_file_capability",
            Cause::FileCapabilityWithoutNetRaw => "file_capability_without_net_raw",
            Cause::FileCapabilityIgnored => "file_capability_ignored",
            Cause::NotPermitted => "not_permitted",
            Cause::NotEffective => "not_effective",
            Cause::DeniedByPolicy => "denied_by_policy",
            Cause::Unknown => "unknown",
        }
    }
}

/// The cause of a refused capture socket, from the process's capability
/// sets (`None`: unreadable) and its binary's file capability.
pub fn diagnose(process: Option<&ProcessCaps>, file: &FileCaps) -> Cause {
    let Some(p) = process else {
        return Cause::Unknown;
    };
    if p.effective.has(CAP_NET_RAW) {
        return Cause::DeniedByPolicy;
    }
    if p.permitted.has(CAP_NET_RAW) {
        return Cause::NotEffective;
    }
    if !p.bounding.has(CAP_NET_RAW) {
        return Cause::NotInBoundingSet;
    }
    // For uid 0 execve treats every capability as file-permitted.
    let file_grants = p.euid == 0
        || match file {
            FileCaps::Set { permitted, .. } => permitted.has(CAP_NET_RAW),
            FileCaps::None => false,
            FileCaps::Unknown(_) => return Cause::NotPermitted,
        };
    if !file_grants {
        return match file {
            FileCaps::Set { .. } => Cause::FileCapabilityWithoutNetRaw,
            _ => Cause::NoFileCapability,
        };
    }
    if p.no_new_privs {
        Cause::NotGrantedNoNewPrivs
    } else {
        Cause::FileCapabilityIgnored
    }
}

/// What `podpath run` does about CAP_NET_RAW before anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raise {
    /// Already effective (a `+ep` binary, root, an ambient capability):
    /// nothing to do.
    AlreadyEffective,
    /// Permitted but not effective (the image's `+p` binary): raise it.
    Raise,
    /// Not permitted: nothing to raise. The capture socket will be refused
    /// and [`diagnose`] names why.
    NotPermitted,
}

/// The pure decision behind [`raise_net_raw`].
pub fn raise_plan(p: &ProcessCaps) -> Raise {
    if p.effective.has(CAP_NET_RAW) {
        Raise::AlreadyEffective
    } else if p.permitted.has(CAP_NET_RAW) {
        Raise::Raise
    } else {
        Raise::NotPermitted
    }
}

/// Why CAP_NET_RAW could not be raised.
#[derive(Debug, thiserror::Error)]
pub enum RaiseError {
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("/proc/self/status: {0}")]
    Read(#[from] std::io::Error),
    #[error("capset: {0}")]
    Capset(#[from] caps::errors::CapsError),
}

/// Makes a permitted CAP_NET_RAW effective; returns what it found.
/// Capabilities belong to a thread and new threads copy their creator's,
/// so this must run before the process starts any thread.
pub fn raise_net_raw() -> Result<Raise, RaiseError> {
    let caps = parse_status(&std::fs::read_to_string("/proc/self/status")?)?;
    let plan = raise_plan(&caps);
    if plan == Raise::Raise {
        caps::raise(None, caps::CapSet::Effective, caps::Capability::CAP_NET_RAW)?;
    }
    Ok(plan)
}

/// Reads the capability lines of `/proc/<pid>/status`. `CapAmb` (Linux 4.3),
/// `NoNewPrivs` (4.10) and `Seccomp` (3.8) count as empty/off when absent.
pub fn parse_status(text: &str) -> Result<ProcessCaps, StatusError> {
    let field = |name: &'static str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::trim)
        })
    };
    let set = |name: &'static str, required: bool| -> Result<CapSet, StatusError> {
        match field(name) {
            Some(v) => u64::from_str_radix(v, 16)
                .map(CapSet)
                .map_err(|_| StatusError::Invalid {
                    field: name,
                    value: v.to_owned(),
                }),
            None if required => Err(StatusError::Missing(name)),
            None => Ok(CapSet(0)),
        }
    };
    let number = |name: &'static str, value: &str| -> Result<u32, StatusError> {
        value.parse().map_err(|_| StatusError::Invalid {
            field: name,
            value: value.to_owned(),
        })
    };
    // Uid: real, effective, saved, filesystem.
    let uid = field("Uid").ok_or(StatusError::Missing("Uid"))?;
    let euid = uid.split_whitespace().nth(1).unwrap_or("");
    Ok(ProcessCaps {
        euid: number("Uid", euid)?,
        inheritable: set("CapInh", true)?,
        permitted: set("CapPrm", true)?,
        effective: set("CapEff", true)?,
        bounding: set("CapBnd", true)?,
        ambient: set("CapAmb", false)?,
        no_new_privs: field("NoNewPrivs")
            .map(|v| number("NoNewPrivs", v))
            .transpose()?
            .is_some_and(|v| v != 0),
        seccomp_filter: field("Seccomp").map(|v| number("Seccomp", v)).transpose()? == Some(2),
    })
}

/// Decodes a `security.capability` value (`struct vfs_cap_data`, or
/// `vfs_ns_cap_data` for revision 3), all fields little-endian u32:
///
/// ```text
/// magic_etc: revision in the top byte (1, 2, 3), bit 0 = effective flag
/// permitted[0], inheritable[0]      capabilities 0..31
/// permitted[1], inheritable[1]      capabilities 32..63 (revisions 2 and 3)
/// rootid                            (revision 3)
/// ```
pub fn parse_file_caps(bytes: &[u8]) -> Result<FileCaps, FileCapsError> {
    let word = |i: usize| {
        bytes
            .get(i * 4..i * 4 + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if bytes.len() < 4 {
        return Err(FileCapsError::Short {
            len: bytes.len(),
            revision: 0,
        });
    }
    let magic = word(0);
    let (revision, need) = match magic & 0xff00_0000 {
        0x0100_0000 => (1, 12),
        0x0200_0000 => (2, 20),
        0x0300_0000 => (3, 24),
        other => return Err(FileCapsError::Revision(other >> 24)),
    };
    if bytes.len() < need {
        return Err(FileCapsError::Short {
            len: bytes.len(),
            revision,
        });
    }
    let wide = |lo: usize, hi: usize| {
        let high = if revision >= 2 { word(hi) } else { 0 };
        CapSet(u64::from(word(lo)) | u64::from(high) << 32)
    };
    Ok(FileCaps::Set {
        permitted: wide(1, 3),
        inheritable: wide(2, 4),
        effective: magic & 1 != 0,
        rootid: (revision == 3).then(|| word(5)),
    })
}

/// A cause with the facts it was read from; its `Display` is the message
/// logged when the capture socket is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    pub cause: Cause,
    pub process: Result<ProcessCaps, StatusError>,
    pub file: FileCaps,
}

impl Diagnosis {
    pub fn new(process: Result<ProcessCaps, StatusError>, file: FileCaps) -> Diagnosis {
        let cause = diagnose(process.as_ref().ok(), &file);
        Diagnosis {
            cause,
            process,
            file,
        }
    }

    /// The diagnosis of the running process: `/proc/self/status` and the
    /// file capability of `/proc/self/exe`.
    pub fn of_this_process() -> Diagnosis {
        let process = match std::fs::read_to_string("/proc/self/status") {
            Ok(text) => parse_status(&text),
            Err(_) => Err(StatusError::Missing("Cap*")),
        };
        let file = match podpath_afpacket::file_capability(std::path::Path::new("/proc/self/exe")) {
            Ok(None) => FileCaps::None,
            Ok(Some(bytes)) => {
                parse_file_caps(&bytes).unwrap_or_else(|e| FileCaps::Unknown(e.to_string()))
            }
            Err(e) => FileCaps::Unknown(format!("security.capability of /proc/self/exe: {e}")),
        };
        Diagnosis::new(process, file)
    }
}

/// The message for a socket the kernel refused: what failed, the cause
/// read from this process, and its remedy. Errors other than a refusal
/// (EPERM, EACCES) are worded as they are.
pub fn denied_message(err: &podpath_afpacket::Error) -> String {
    match err {
        podpath_afpacket::Error::NeedsCapNetRaw { op, source } => {
            format!("{op} failed: {source}: {}", Diagnosis::of_this_process())
        }
        other => other.to_string(),
    }
}

impl fmt::Display for FileCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileCaps::None => f.write_str("none"),
            FileCaps::Unknown(why) => write!(f, "unknown ({why})"),
            FileCaps::Set {
                permitted,
                inheritable,
                effective,
                rootid,
            } => {
                if permitted.0 == 1 << CAP_NET_RAW && inheritable.0 == 0 {
                    f.write_str("cap_net_raw")?;
                    f.write_str(if *effective { "+ep" } else { "+p" })?;
                } else {
                    write!(
                        f,
                        "permitted={:#x} inheritable={:#x} effective={effective}",
                        permitted.0, inheritable.0
                    )?;
                }
                if let Some(id) = rootid {
                    write!(f, " rootid={id}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nnp = self.process.as_ref().is_ok_and(|p| p.no_new_privs);
        match self.cause {
            Cause::NotInBoundingSet => f.write_str(
                "CAP_NET_RAW is not in the capability bounding set: the container does not add it; \
                 add it with securityContext.capabilities.add: [\"NET_RAW\"] (docker run --cap-add NET_RAW)",
            )?,
            Cause::NotGrantedNoNewPrivs => f.write_str(
                "CAP_NET_RAW is in the bounding set but not permitted and no_new_privs is set: \
                 the runtime did not grant it to this non-root user (Docker Engine without the fix \
                 of moby#45491: before 25.0, or a 24.0 without its backport; e.g. cri-dockerd), and no_new_privs keeps the binary's file \
                 capability from raising it; set allowPrivilegeEscalation: true on the podpath \
                 container (docker run: without --security-opt no-new-privileges), or run on \
                 containerd, CRI-O or Docker Engine 25.0+",
            )?,
            Cause::NoFileCapability => {
                f.write_str(
                    "CAP_NET_RAW is in the bounding set but not permitted and the binary has no \
                     file capability: a non-root process keeps no capability across execve without \
                     one; use the podpath image as built (its Dockerfile sets cap_net_raw+p) or \
                     set it with setcap cap_net_raw+p: an image tool that drops the \
                     security.capability extended attribute removes it",
                )?;
                if nnp {
                    f.write_str(
                        " (with no_new_privs set, the file capability works only where the runtime \
                         grants NET_RAW in the permitted set: containerd, CRI-O, Docker Engine 25.0+)",
                    )?;
                }
            }
            Cause::FileCapabilityWithoutNetRaw => f.write_str(
                "CAP_NET_RAW is in the bounding set but not permitted, and the binary's file \
                 capability does not include it; set it with setcap cap_net_raw+p",
            )?,
            Cause::FileCapabilityIgnored => f.write_str(
                "CAP_NET_RAW is in the bounding set and the binary's file capability, yet execve \
                 did not grant it: the filesystem holding the binary may be mounted nosuid, the \
                 capability may have been written for another user namespace, or the process is \
                 traced",
            )?,
            Cause::NotPermitted => f.write_str(
                "CAP_NET_RAW is in the bounding set but not permitted, and the binary's file \
                 capability could not be read: either the binary lacks cap_net_raw+p, or \
                 no_new_privs kept it from raising NET_RAW",
            )?,
            Cause::NotEffective => f.write_str(
                "CAP_NET_RAW is permitted but not effective, and podpath could not raise it \
                 (its start-up log says why); give the binary cap_net_raw+ep (with the effective \
                 flag), or have the runtime put NET_RAW in the effective set",
            )?,
            Cause::DeniedByPolicy => {
                f.write_str(
                    "CAP_NET_RAW is effective, yet the kernel refused the socket: a seccomp filter \
                     or a security module (AppArmor, SELinux) denies AF_PACKET sockets; allow them \
                     in the container's seccompProfile or security profile",
                )?;
                if self.process.as_ref().is_ok_and(|p| p.seccomp_filter) {
                    f.write_str(" (this process runs under a seccomp filter)")?;
                }
            }
            Cause::Unknown => f.write_str(
                "could not read the process's capabilities; podpath needs CAP_NET_RAW: \
                 capabilities.add: [\"NET_RAW\"] and the image's cap_net_raw+p file capability",
            )?,
        }
        write!(f, " [cause={}", self.cause.as_str())?;
        match &self.process {
            Ok(p) => write!(
                f,
                " uid={} CapBnd={:016x} CapPrm={:016x} CapEff={:016x} CapInh={:016x} CapAmb={:016x} NoNewPrivs={}",
                p.euid,
                p.bounding.0,
                p.permitted.0,
                p.effective.0,
                p.inheritable.0,
                p.ambient.0,
                u8::from(p.no_new_privs)
            )?,
            Err(e) => write!(f, " status: {e}")?,
        }
        write!(f, " file capability: {}]", self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: CapSet = CapSet(1 << CAP_NET_RAW);
    const NONE: CapSet = CapSet(0);

    fn caps(bounding: CapSet, permitted: CapSet, effective: CapSet, nnp: bool) -> ProcessCaps {
        ProcessCaps {
            euid: 65532,
            bounding,
            permitted,
            effective,
            no_new_privs: nnp,
            ..ProcessCaps::default()
        }
    }

    fn fcap(permitted: CapSet) -> FileCaps {
        FileCaps::Set {
            permitted,
            inheritable: NONE,
            effective: true,
            rootid: None,
        }
    }

    #[test]
    fn raise_plan_raises_only_a_permitted_not_effective_net_raw() {
        // The image's +p binary where the runtime grants NET_RAW
        // (containerd, CRI-O, Docker 25+; Docker before its fix without
        // no_new_privs): permitted, not effective.
        assert_eq!(raise_plan(&caps(RAW, RAW, NONE, true)), Raise::Raise);
        assert_eq!(raise_plan(&caps(RAW, RAW, NONE, false)), Raise::Raise);
        // A +ep binary, root, or an ambient capability: already effective.
        assert_eq!(
            raise_plan(&caps(RAW, RAW, RAW, false)),
            Raise::AlreadyEffective
        );
        // Not in the bounding set (the +p binary still starts), or the
        // runtime left permitted empty under no_new_privs: nothing to raise.
        assert_eq!(
            raise_plan(&caps(NONE, NONE, NONE, false)),
            Raise::NotPermitted
        );
        assert_eq!(
            raise_plan(&caps(RAW, NONE, NONE, true)),
            Raise::NotPermitted
        );
        // Other capabilities do not count.
        let others = CapSet(!RAW.0);
        assert_eq!(
            raise_plan(&caps(others, others, others, false)),
            Raise::NotPermitted
        );
    }

    #[test]
    fn raise_net_raw_leaves_this_process_with_net_raw_effective_iff_permitted() {
        let before = parse_status(&std::fs::read_to_string("/proc/self/status").unwrap()).unwrap();
        let plan = raise_net_raw().unwrap();
        assert_eq!(plan, raise_plan(&before));
        let after = parse_status(&std::fs::read_to_string("/proc/self/status").unwrap()).unwrap();
        assert_eq!(
            after.effective.has(CAP_NET_RAW),
            before.permitted.has(CAP_NET_RAW)
        );
    }

    #[test]
    fn docker_before_its_fix_with_no_new_privs() {
        // Bounding only, permitted and effective empty after execve.
        let d = Diagnosis::new(Ok(caps(RAW, NONE, NONE, true)), fcap(RAW));
        assert_eq!(d.cause, Cause::NotGrantedNoNewPrivs);
        let msg = d.to_string();
        assert!(
            msg.contains(
                "CAP_NET_RAW is in the bounding set but not permitted and no_new_privs is set"
            ),
            "{msg}"
        );
        assert!(msg.contains("allowPrivilegeEscalation: true"), "{msg}");
        assert!(msg.contains("NoNewPrivs=1"), "{msg}");
        assert!(msg.contains("file capability: cap_net_raw+ep"), "{msg}");
    }

    #[test]
    fn image_without_the_file_capability() {
        for nnp in [false, true] {
            let d = Diagnosis::new(Ok(caps(RAW, NONE, NONE, nnp)), FileCaps::None);
            assert_eq!(d.cause, Cause::NoFileCapability);
            let msg = d.to_string();
            assert!(msg.contains("has no file capability"), "{msg}");
            assert!(msg.contains("security.capability"), "{msg}");
            assert_eq!(msg.contains("containerd, CRI-O"), nnp, "{msg}");
        }
    }

    #[test]
    fn capability_not_added() {
        for file in [FileCaps::None, fcap(RAW)] {
            let d = Diagnosis::new(Ok(caps(NONE, NONE, NONE, true)), file);
            assert_eq!(d.cause, Cause::NotInBoundingSet);
            assert!(d.to_string().contains("add: [\"NET_RAW\"]"));
        }
    }

    #[test]
    fn file_capability_without_net_raw() {
        let other = CapSet(1 << 10); // CAP_NET_BIND_SERVICE
        let d = Diagnosis::new(Ok(caps(RAW, NONE, NONE, false)), fcap(other));
        assert_eq!(d.cause, Cause::FileCapabilityWithoutNetRaw);
        assert!(d.to_string().contains("permitted=0x400"), "{d}");
    }

    #[test]
    fn file_capability_ignored_without_no_new_privs() {
        let d = Diagnosis::new(Ok(caps(RAW, NONE, NONE, false)), fcap(RAW));
        assert_eq!(d.cause, Cause::FileCapabilityIgnored);
        assert!(d.to_string().contains("nosuid"));
    }

    #[test]
    fn unreadable_file_capability() {
        let d = Diagnosis::new(
            Ok(caps(RAW, NONE, NONE, true)),
            FileCaps::Unknown("EIO".into()),
        );
        assert_eq!(d.cause, Cause::NotPermitted);
        assert!(d.to_string().contains("unknown (EIO)"), "{d}");
    }

    #[test]
    fn permitted_but_not_effective() {
        let file = FileCaps::Set {
            permitted: RAW,
            inheritable: NONE,
            effective: false,
            rootid: None,
        };
        let d = Diagnosis::new(Ok(caps(RAW, RAW, NONE, true)), file);
        assert_eq!(d.cause, Cause::NotEffective);
        assert!(
            d.to_string().contains("file capability: cap_net_raw+p]"),
            "{d}"
        );
    }

    #[test]
    fn effective_yet_refused_is_a_policy() {
        let mut p = caps(RAW, RAW, RAW, true);
        p.seccomp_filter = true;
        let d = Diagnosis::new(Ok(p), fcap(RAW));
        assert_eq!(d.cause, Cause::DeniedByPolicy);
        assert!(d.to_string().contains("seccomp filter)"), "{d}");
    }

    #[test]
    fn root_needs_no_file_capability() {
        let mut p = caps(RAW, NONE, NONE, true);
        p.euid = 0;
        assert_eq!(
            diagnose(Some(&p), &FileCaps::None),
            Cause::NotGrantedNoNewPrivs
        );
    }

    #[test]
    fn unreadable_status() {
        let d = Diagnosis::new(Err(StatusError::Missing("CapBnd")), FileCaps::None);
        assert_eq!(d.cause, Cause::Unknown);
        assert!(d.to_string().contains("no CapBnd line"), "{d}");
    }

    #[test]
    fn every_cause_has_a_distinct_label() {
        let all = [
            Cause::NotInBoundingSet,
            Cause::NotGrantedNoNewPrivs,
            Cause::NoFileCapability,
            Cause::FileCapabilityWithoutNetRaw,
            Cause::FileCapabilityIgnored,
            Cause::NotPermitted,
            Cause::NotEffective,
            Cause::DeniedByPolicy,
            Cause::Unknown,
        ];
        let labels: std::collections::HashSet<_> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(labels.len(), all.len());
    }

    const STATUS: &str = "Name:\tpodpath\nUmask:\t0022\nState:\tS (sleeping)\n\
        Uid:\t65532\t65532\t65532\t65532\nGid:\t65532\t65532\t65532\t65532\n\
        CapInh:\t0000000000000000\nCapPrm:\t0000000000002000\nCapEff:\t0000000000002000\n\
        CapBnd:\t0000000000002000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n\
        Seccomp_filters:\t1\n";

    #[test]
    fn parses_proc_status() {
        let p = parse_status(STATUS).unwrap();
        assert_eq!(p.euid, 65532);
        assert_eq!((p.permitted, p.effective, p.bounding), (RAW, RAW, RAW));
        assert_eq!((p.inheritable, p.ambient), (NONE, NONE));
        assert!(p.no_new_privs);
        assert!(
            p.seccomp_filter,
            "Seccomp_filters must not be read as Seccomp"
        );
    }

    #[test]
    fn status_from_an_old_kernel_and_bad_values() {
        let old = "Uid:\t0\t0\t0\t0\nCapInh:\t0\nCapPrm:\t3fffffffff\nCapEff:\t3fffffffff\nCapBnd:\t3fffffffff\n";
        let p = parse_status(old).unwrap();
        assert!(!p.no_new_privs && !p.seccomp_filter);
        assert_eq!(p.ambient, NONE);
        assert_eq!(
            parse_status("Uid:\t1\t1\t1\t1\nCapInh:\t0\nCapPrm:\t0\nCapEff:\t0\n"),
            Err(StatusError::Missing("CapBnd"))
        );
        assert!(matches!(
            parse_status(&STATUS.replace("CapEff:\t0000000000002000", "CapEff:\tzz")),
            Err(StatusError::Invalid {
                field: "CapEff",
                ..
            })
        ));
        assert!(matches!(
            parse_status("Uid:\tx\n"),
            Err(StatusError::Invalid { field: "Uid", .. })
        ));
        assert_eq!(parse_status(""), Err(StatusError::Missing("Uid")));
    }

    #[test]
    fn parses_file_capabilities() {
        // `setcap cap_net_raw+ep`: revision 2, effective flag, permitted bit 13.
        let v2 = [
            0x01, 0, 0, 0x02, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(parse_file_caps(&v2), Ok(fcap(RAW)));
        // Revision 3 (written inside a user namespace): rootid follows.
        let mut v3 = v2.to_vec();
        v3[3] = 0x03;
        v3.extend_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            parse_file_caps(&v3),
            Ok(FileCaps::Set {
                permitted: RAW,
                inheritable: NONE,
                effective: true,
                rootid: Some(1000)
            })
        );
        // Revision 1: 32 bits, no effective flag.
        let v1 = [0, 0, 0, 0x01, 0x00, 0x20, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            parse_file_caps(&v1),
            Ok(FileCaps::Set {
                effective: false,
                ..
            })
        ));
        // The high permitted word: bit 0 is capability 32, bit 8 capability 40.
        let mut hi = v2;
        hi[12] = 1;
        hi[13] = 1;
        let Ok(FileCaps::Set { permitted, .. }) = parse_file_caps(&hi) else {
            panic!("revision 2")
        };
        assert!(permitted.has(32) && permitted.has(40) && permitted.has(CAP_NET_RAW));
    }

    #[test]
    fn bad_file_capabilities_are_errors() {
        assert_eq!(
            parse_file_caps(&[]),
            Err(FileCapsError::Short {
                len: 0,
                revision: 0
            })
        );
        assert_eq!(
            parse_file_caps(&[1, 0, 0, 0x02, 0]),
            Err(FileCapsError::Short {
                len: 5,
                revision: 2
            })
        );
        assert_eq!(
            parse_file_caps(&[0, 0, 0, 0x07]),
            Err(FileCapsError::Revision(7))
        );
        for len in 0..=24 {
            let _ = parse_file_caps(&[0xff; 24][..len]);
        }
    }

    #[test]
    fn a_refused_socket_is_diagnosed_and_other_errors_are_not() {
        let refused = podpath_afpacket::Error::NeedsCapNetRaw {
            op: "socket(AF_PACKET)",
            source: std::io::Error::from_raw_os_error(libc::EPERM),
        };
        let msg = denied_message(&refused);
        assert!(msg.starts_with("socket(AF_PACKET) failed: "), "{msg}");
        assert!(msg.contains("[cause="), "{msg}");
        let other = podpath_afpacket::Error::Os {
            op: "bind",
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        };
        assert!(!denied_message(&other).contains("cause="));
    }

    #[test]
    fn this_process_can_be_diagnosed() {
        // Whatever this test runs as, both sources are readable on Linux.
        let d = Diagnosis::of_this_process();
        assert!(d.process.is_ok(), "{d}");
        assert!(!matches!(d.file, FileCaps::Unknown(_)), "{d}");
        assert_ne!(d.cause, Cause::Unknown);
    }
}
