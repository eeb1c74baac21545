//! Random identifiers (a backup run's reservation, an archive's id), from
//! the operating system's generator: two processes must never pick the same.

/// 128 random bits as 32 lower-case hex digits.
pub fn random_hex128() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness (never seen on Linux): time and pid still make a
        // collision between two runs practically impossible.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = (now ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_differ_and_are_hex() {
        let (a, b) = (super::random_hex128(), super::random_hex128());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
