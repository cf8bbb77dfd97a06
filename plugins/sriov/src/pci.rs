//! A VF's PCI address, validated once when parsed: from then on it is safe to use
//! as a sysfs path component and as a file name in the state directory.

use std::fmt;

/// `DDDD:BB:DD.F` (hex digits, function 0-7), kept as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PciAddress(String);

impl PciAddress {
    pub fn parse(text: &str) -> Option<PciAddress> {
        let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
        let (domain, rest) = text.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (device, function) = rest.split_once('.')?;
        let valid = hex(domain, 4)
            && hex(bus, 2)
            && hex(device, 2)
            && function.len() == 1
            && matches!(function.as_bytes()[0], b'0'..=b'7');
        valid.then(|| PciAddress(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_full_addresses_parse() {
        assert!(PciAddress::parse("0000:af:06.0").is_some());
        assert!(PciAddress::parse("0000:AF:06.7").is_some());
        for bad in [
            "",
            "af:06.0",
            "0000:af:06.8",
            "0000:af:06.0/../x",
            "../../etc",
            "0000:af:06.00",
            "0000:af:6.0",
        ] {
            assert!(PciAddress::parse(bad).is_none(), "{bad}");
        }
    }
}
