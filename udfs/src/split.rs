//! Deterministic train/test membership: a fixed 64-bit hash of a key and a seed mapped to
//! [0, 1). The ML split and the `hash_split` SQL function use this one definition.

/// FNV-1a over the bytes, then SplitMix64's finaliser mixed with the seed: stable across
/// platforms, Rust versions and runs (std's hasher promises none of that).
pub fn unit_hash(key: &[u8], seed: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// True when the key falls in the held-out fraction.
pub fn held_out(key: &[u8], seed: u64, fraction: f64) -> bool {
    unit_hash(key, seed) < fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_roughly_uniform() {
        assert_eq!(unit_hash(b"customer-42", 7), unit_hash(b"customer-42", 7));
        assert_ne!(unit_hash(b"customer-42", 7), unit_hash(b"customer-42", 8));
        let held = (0..100_000)
            .filter(|i| held_out(i.to_string().as_bytes(), 1, 0.3))
            .count();
        assert!((29_000..31_000).contains(&held), "{held}");
    }
}
