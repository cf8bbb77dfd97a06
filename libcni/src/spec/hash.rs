//! SHA-512 names, as the Go plugins derive chain names and IDs.

use sha2::{Digest, Sha512};

/// `prefix` and the hex SHA-512 of `input`, cut to `length` characters in all
/// (the Go `utils.MustFormatHashWithPrefix`).
pub fn sha512_hex(length: usize, prefix: &str, input: &[u8]) -> String {
    let digest = Sha512::digest(input);
    let mut text = String::with_capacity(prefix.len() + 128);
    text.push_str(prefix);
    for byte in digest {
        text.push_str(&format!("{byte:02x}"));
    }
    text.truncate(length);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_truncation() {
        // SHA-512("abc") starts with ddaf35a193617aba.
        assert_eq!(sha512_hex(16, "", b"abc"), "ddaf35a193617aba");
        assert_eq!(sha512_hex(12, "CNI-", b"abc"), "CNI-ddaf35a1");
    }
}
