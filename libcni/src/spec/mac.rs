//! MAC addresses as the kernel, `ip` and the CNI results write them.

/// Formats a MAC as the kernel and `ip` print it.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (either case).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in mac.iter_mut() {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text_round_trips() {
        let mac = parse_mac("0A:58:0a:01:00:FF").unwrap();
        assert_eq!(format_mac(&mac), "0a:58:0a:01:00:ff");
        for bad in [
            "",
            "0a:58",
            "0a:58:0a:01:00:ff:00",
            "0g:00:00:00:00:00",
            "0a-58-0a-01-00-ff",
            "a:58:0a:01:00:ff",
        ] {
            assert!(parse_mac(bad).is_none(), "{bad}");
        }
    }
}
