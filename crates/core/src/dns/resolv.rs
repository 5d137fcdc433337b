//! resolv.conf(5): `nameserver`, `search` / `domain` (the last one wins, as
//! in glibc), `options` (`ndots:N` capped at 15, `timeout:N`, `attempts:N`;
//! others kept verbatim). Comments start with `#` or `;`. Unknown or
//! malformed lines are skipped and counted, never an error.

use std::net::IpAddr;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    /// Lowercase, without trailing dots.
    pub search: Vec<String>,
    pub ndots: Option<u8>,
    pub timeout_secs: Option<u32>,
    pub attempts: Option<u32>,
    /// Options other than the ones above, as written.
    pub options: Vec<String>,
    pub skipped_lines: usize,
}

/// glibc caps ndots at 15 (RES_MAXNDOTS).
const MAX_NDOTS: u32 = 15;
/// glibc keeps at most 6 search domains historically; newer ones more. Bound
/// what a junk file can make us hold.
const MAX_SEARCH: usize = 32;

pub fn parse(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        match keyword {
            "nameserver" => match words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                Some(ip) => conf.nameservers.push(ip),
                None => conf.skipped_lines += 1,
            },
            "search" | "domain" => {
                conf.search = words
                    .map(|w| w.trim_end_matches('.').to_ascii_lowercase())
                    .filter(|w| !w.is_empty())
                    .take(MAX_SEARCH)
                    .collect();
            }
            "options" => {
                for opt in words {
                    let (name, value) = opt.split_once(':').unwrap_or((opt, ""));
                    let number = value.parse::<u32>().ok();
                    match (name, number) {
                        ("ndots", Some(n)) => conf.ndots = Some(n.min(MAX_NDOTS) as u8),
                        ("timeout", Some(n)) => conf.timeout_secs = Some(n),
                        ("attempts", Some(n)) => conf.attempts = Some(n),
                        _ => conf.options.push(opt.to_string()),
                    }
                }
            }
            _ => conf.skipped_lines += 1,
        }
    }
    conf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_pod_resolv_conf() {
        let c = parse(
            "search default.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver 10.96.0.10\n\
             options ndots:5 edns0 timeout:2\n",
        );
        assert_eq!(
            c.search,
            [
                "default.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert_eq!(c.nameservers, ["10.96.0.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.ndots, Some(5));
        assert_eq!(c.timeout_secs, Some(2));
        assert_eq!(c.options, ["edns0"]);
    }

    #[test]
    fn junk_is_tolerated() {
        let c = parse(
            "# comment\n\n  ; another\nnameserver not-an-ip\nnameserver fd00::a # trailing\n\
             garbage line here\nsearch Example.COM. \ndomain corp.example\noptions ndots:99 ndots:x rotate\n\u{0}\u{7f}",
        );
        assert_eq!(c.nameservers, ["fd00::a".parse::<IpAddr>().unwrap()]);
        // `domain` after `search`: the last one wins.
        assert_eq!(c.search, ["corp.example"]);
        assert_eq!(c.ndots, Some(15));
        assert_eq!(c.options, ["ndots:x", "rotate"]);
        assert_eq!(c.skipped_lines, 3);
    }
}
