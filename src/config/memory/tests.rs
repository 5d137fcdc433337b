use std::path::Path;

use super::*;

const MI: u64 = 1 << 20;

fn cgroup_tree(files: &[(&str, &str)]) -> tempdir::Dir {
    let dir = tempdir::Dir::new();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

/// A scratch directory removed on drop (no crate for this one use).
mod tempdir {
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "podpath-cgroup-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn v2_limit_is_the_smallest_on_the_path_to_the_root() {
    let t = cgroup_tree(&[
        ("kubepods.slice/memory.max", "max\n"),
        ("kubepods.slice/pod1/memory.max", "268435456\n"),
        ("kubepods.slice/pod1/ctr/memory.max", "134217728\n"),
    ]);
    let l = cgroup_limit("0::/kubepods.slice/pod1/ctr\n", t.path()).unwrap();
    assert_eq!(l.bytes, 128 * MI);
    assert_eq!(
        l.source,
        t.path().join("kubepods.slice/pod1/ctr/memory.max")
    );
    // A parent's lower limit wins.
    let t = cgroup_tree(&[("a/memory.max", "67108864\n"), ("a/b/memory.max", "max\n")]);
    assert_eq!(cgroup_limit("0::/a/b\n", t.path()).unwrap().bytes, 64 * MI);
}

#[test]
fn v2_inside_a_cgroup_namespace_reads_the_mount_root() {
    let t = cgroup_tree(&[("memory.max", "100663296\n")]);
    assert_eq!(cgroup_limit("0::/\n", t.path()).unwrap().bytes, 96 * MI);
    // Without a namespace the host path does not exist under the
    // container's mount: the walk ends at the same file.
    assert_eq!(
        cgroup_limit("0::/kubepods/burstable/pod9/abc\n", t.path())
            .unwrap()
            .bytes,
        96 * MI
    );
}

#[test]
fn no_limit_when_max_missing_or_garbage() {
    let t = cgroup_tree(&[("a/memory.max", "max\n"), ("b/memory.max", "lots\n")]);
    assert_eq!(cgroup_limit("0::/a\n", t.path()), None);
    assert_eq!(cgroup_limit("0::/b\n", t.path()), None);
    assert_eq!(cgroup_limit("0::/nowhere\n", t.path()), None);
    assert_eq!(cgroup_limit("", t.path()), None);
    assert_eq!(cgroup_limit("garbage without colons\n", t.path()), None);
}

#[test]
fn v1_memory_controller_and_its_unlimited_value() {
    let t = cgroup_tree(&[
        (
            "memory/process/x/memory.limit_in_bytes",
            "9223372036854771712\n",
        ),
        ("memory/process/x/y/memory.limit_in_bytes", "50331648\n"),
    ]);
    let text = "12:pids:/process/x/y\n4:memory:/process/x/y\n0::/\n";
    let l = cgroup_limit(text, t.path()).unwrap();
    assert_eq!(l.bytes, 48 * MI);
    assert_eq!(cgroup_limit("4:cpu,memory:/process/x\n", t.path()), None);
}

#[test]
fn budget_quantities() {
    assert_eq!("auto".parse(), Ok(BudgetArg::Auto));
    assert_eq!("off".parse(), Ok(BudgetArg::Off));
    assert_eq!("96Mi".parse(), Ok(BudgetArg::Bytes(96 * MI)));
    assert_eq!("1Gi".parse(), Ok(BudgetArg::Bytes(1 << 30)));
    assert_eq!("100M".parse(), Ok(BudgetArg::Bytes(100_000_000)));
    assert_eq!("64k".parse(), Ok(BudgetArg::Bytes(64_000)));
    assert_eq!("67108864".parse(), Ok(BudgetArg::Bytes(64 * MI)));
    for bad in [
        "",
        "0",
        "Mi",
        "12 Mi",
        "1.5Gi",
        "12MB",
        "-1",
        "99999999999999999999Gi",
    ] {
        assert!(bad.parse::<BudgetArg>().is_err(), "{bad:?}");
    }
}

#[test]
fn buckets_follow_hashbrown() {
    assert_eq!(buckets(57_344), 65_536);
    assert_eq!(buckets(57_345), 131_072);
    assert_eq!(buckets(7_168), 8_192);
    assert_eq!(buckets(3), 8);
}

fn sidecar() -> Fixed {
    Fixed {
        interfaces: 2,
        ring_size: 4 << 20,
        extra: 0,
    }
}

#[test]
fn a_large_budget_keeps_the_defaults() {
    let d = Limits::default();
    let p = plan(1 << 30, &d, sidecar(), Pinned::default());
    assert_eq!(p.limits.max_flows, d.max_flows);
    assert_eq!(p.limits.max_dns_names, d.max_dns_names);
    assert_eq!(p.limits.max_series, d.max_series);
    assert_eq!(p.ring_size, 4 << 20);
    assert_eq!(p.estimate, estimate(&d, sidecar(), 4 << 20));
}

#[test]
fn every_budget_down_to_the_minimum_is_met() {
    let d = Limits::default();
    let floor = estimate(
        &Limits {
            max_flows: MIN_FLOWS,
            max_dns_names: MIN_NAMES,
            max_series: MIN_SERIES,
            ..d.clone()
        },
        Fixed {
            ring_size: MIN_RING,
            ..sidecar()
        },
        MIN_RING,
    );
    let mut budget = 24 * MI;
    while budget < 512 * MI {
        let p = plan(budget, &d, sidecar(), Pinned::default());
        if budget >= floor {
            assert!(p.estimate <= budget, "{budget}: {p:?}");
        }
        assert!(p.limits.max_flows <= d.max_flows && p.limits.max_flows >= MIN_FLOWS);
        assert!(p.limits.max_dns_names <= d.max_dns_names);
        assert!(p.limits.max_series <= d.max_series);
        // Flows stay at 7/8 of a power of two: no bucket paid for and unused.
        assert_eq!(
            buckets(p.limits.max_flows) * 7 / 8,
            p.limits.max_flows as u64
        );
        budget += 3 * MI;
    }
}

#[test]
fn the_shipped_limit_and_the_ci_limit_give_these_tables() {
    let d = Limits::default();
    // 128Mi limit, three quarters of it as the budget (deploy/sidecar).
    let p = plan(96 * MI, &d, sidecar(), Pinned::default());
    assert_eq!(p.limits.max_flows, 14_336);
    assert!(p.limits.max_dns_names > 8_000 && p.limits.max_dns_names < d.max_dns_names);
    assert!(p.estimate <= 96 * MI);
    // The cgroup flood of ci/memory-limit.sh: 40Mi, analyze (no rings).
    let analyze = Fixed {
        interfaces: 0,
        ring_size: 0,
        extra: 0,
    };
    let p = plan(30 * MI, &d, analyze, Pinned::default());
    assert_eq!(p.limits.max_flows, 3_584);
    assert!(p.estimate <= 30 * MI);
}

#[test]
fn small_budgets_shrink_the_rings_to_a_quarter() {
    let d = Limits::default();
    let p = plan(24 * MI, &d, sidecar(), Pinned::default());
    assert_eq!(p.ring_size, 2 << 20);
    let p = plan(8 * MI, &d, sidecar(), Pinned::default());
    assert_eq!(p.ring_size, MIN_RING);
}

#[test]
fn pinned_tables_keep_their_size() {
    let d = Limits::default();
    let pinned = Pinned {
        flows: true,
        names: false,
        series: false,
    };
    let p = plan(64 * MI, &d, sidecar(), pinned);
    assert_eq!(p.limits.max_flows, d.max_flows);
    // What is left after the pinned flows goes to names and series.
    assert!(p.limits.max_dns_names < d.max_dns_names);
    let p = plan(
        64 * MI,
        &d,
        sidecar(),
        Pinned {
            names: true,
            series: true,
            flows: false,
        },
    );
    assert_eq!(p.limits.max_dns_names, d.max_dns_names);
    assert_eq!(p.limits.max_series, d.max_series);
    // The pinned tables alone exceed the budget: flows get the minimum.
    assert_eq!(p.limits.max_flows, MIN_FLOWS);
    assert!(p.estimate > 64 * MI);
    // With room, flows get all of what the pinned tables leave.
    let p = plan(
        128 * MI,
        &d,
        sidecar(),
        Pinned {
            names: true,
            series: true,
            flows: false,
        },
    );
    assert_eq!(p.limits.max_flows, 14_336);
    assert!(p.estimate <= 128 * MI);
}

#[test]
fn the_real_cgroup_file_parses_if_present() {
    // Whatever this machine's cgroup says, reading it never fails hard.
    let _ = container_limit();
    assert!(Path::new("/proc/self/cgroup").exists());
}

#[test]
fn tables_at_their_minimum_push_flows_down_not_over_the_budget() {
    // 20 MiB with one ring: series reach their minimum, and flows give way
    // so that the whole still fits.
    let one = Fixed {
        interfaces: 1,
        ring_size: 4 << 20,
        extra: 0,
    };
    let p = plan(20 * MI, &Limits::default(), one, Pinned::default());
    assert!(p.limits.max_series < 2 * MIN_SERIES);
    assert!(p.estimate <= 20 * MI, "{p:?}");
    assert!(p.limits.max_flows < 1_792);
}
