//! Hash maps and sets for the engine's tables.
//!
//! Most of these tables are keyed by what the traffic says (addresses and
//! ports, DNS names, label values), so their hasher has to be seeded with
//! something a peer cannot know, or crafted keys could pile into one bucket
//! and turn each packet into a scan. std's SipHash-1-3 (`RandomState`) gives
//! that with a keyed PRF, at a cost that showed as the largest single symbol
//! of `podpath analyze` (≈ 10 % of its samples). foldhash's `fast::RandomState`
//! (what hashbrown uses by default) is several times cheaper for the short
//! keys here and is still seeded per process and per table at random; it is
//! not a cryptographic PRF, so an attacker who could learn its seed (e.g. by
//! timing a long-running sidecar very precisely) could build colliding keys.
//! docs/THREAT-MODEL.md weighs that: every table is also capped, so the worst
//! case is a slower, bounded table, not unbounded work or memory. Never use an
//! unseeded hasher (FxHash, `FixedState`) for traffic-keyed tables.

/// The hasher builder of every traffic-keyed table: per-process and
/// per-table random seeds (see the module documentation).
pub type RandomState = foldhash::fast::RandomState;

/// `std::collections::HashMap` with [`RandomState`]. Build with
/// `HashMap::default()` or `HashMap::with_capacity_and_hasher(n, Default::default())`.
pub type HashMap<K, V> = std::collections::HashMap<K, V, RandomState>;

/// `std::collections::HashSet` with [`RandomState`].
pub type HashSet<K> = std::collections::HashSet<K, RandomState>;
