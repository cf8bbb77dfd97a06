//! MAC addresses: parsed once from text, compared by their bytes, written as the
//! kernel, `ip` and Go write them. A leaf: the protocol (configs, results) and
//! the netlink client both use it, and it uses neither.

use std::fmt;
use std::str::FromStr;

/// A 6-byte Ethernet address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

/// Text that is not a MAC address in one of the forms [`MacAddr::from_str`] reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address")]
pub struct BadMac(pub String);

impl MacAddr {
    /// All zeros: "no MAC" where the kernel reports one anyway (an unset VF MAC).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The address of a netlink attribute, when it is 6 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Option<MacAddr> {
        bytes.try_into().ok().map(MacAddr)
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    pub fn is_zero(&self) -> bool {
        *self == MacAddr::ZERO
    }

    /// The link-local IPv6 address a kernel derives from this MAC by default
    /// (modified EUI-64, RFC 4291 appendix A): fe80::, the MAC with ff:fe in its
    /// middle and the universal/local bit flipped.
    pub fn ipv6_link_local(&self) -> std::net::Ipv6Addr {
        let m = self.0;
        let mut octets = [0u8; 16];
        octets[..2].copy_from_slice(&[0xfe, 0x80]);
        octets[8..].copy_from_slice(&[m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
        std::net::Ipv6Addr::from(octets)
    }
}

impl FromStr for MacAddr {
    type Err = BadMac;

    /// Parses the 6-byte forms Go's `net.ParseMAC` reads, so that a config Go takes
    /// is taken here too: `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` (one separator
    /// throughout) and `aabb.ccdd.eeff`, hex digits in either case. Go's 8- and
    /// 20-byte forms are no Ethernet address: refused here, by the kernel under Go.
    fn from_str(text: &str) -> Result<MacAddr, BadMac> {
        let bad = || BadMac(text.to_string());
        let bytes = text.as_bytes();
        // Each group of hex digits, and the one separator between groups.
        let (group, separator) = match bytes.get(2) {
            Some(b':' | b'-') => (2, bytes[2]),
            _ if bytes.get(4) == Some(&b'.') => (4, b'.'),
            _ => return Err(bad()),
        };
        let groups: Vec<&[u8]> = bytes.split(|b| *b == separator).collect();
        if groups.len() != 12 / group || groups.iter().any(|g| g.len() != group) {
            return Err(bad());
        }
        let digits: Vec<u8> = groups.concat();
        let mut mac = [0u8; 6];
        for (byte, pair) in mac.iter_mut().zip(digits.chunks(2)) {
            let nibble = |d: u8| (d as char).to_digit(16).ok_or_else(bad);
            *byte = (nibble(pair[0])? << 4 | nibble(pair[1])?) as u8;
        }
        Ok(MacAddr(mac))
    }
}

/// Lower-case colon hex, as Go's `net.HardwareAddr` prints it.
impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<MacAddr, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde for a MAC kept as text where Go writes `""` for none (sriov-cni's cache):
/// `""` is `None`, and so is text that is no MAC (read leniently, as it always was).
pub mod or_empty {
    use super::MacAddr;

    pub fn serialize<S: serde::Serializer>(
        mac: &Option<MacAddr>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match mac {
            Some(mac) => serializer.collect_str(mac),
            None => serializer.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<MacAddr>, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        Ok(text.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text_round_trips() {
        let mac: MacAddr = "0A:58:0a:01:00:FF".parse().unwrap();
        assert_eq!(mac.to_string(), "0a:58:0a:01:00:ff");
        assert_eq!(mac, "0a:58:0a:01:00:ff".parse().unwrap());
    }

    #[test]
    fn the_forms_go_reads_are_read_and_nothing_else() {
        let mac = MacAddr([0x0a, 0x58, 0x0a, 0x01, 0x00, 0xff]);
        for good in ["0a:58:0a:01:00:ff", "0A-58-0A-01-00-FF", "0a58.0a01.00ff"] {
            assert_eq!(good.parse(), Ok(mac), "{good}");
        }
        for bad in [
            "",
            "0a:58",
            "0a:58:0a:01:00:ff:00",
            "0a:58:0a:01:00:ff:00:11",
            "0g:00:00:00:00:00",
            "a:58:0a:01:00:ff",
            "0a:58:0a:01:00:f",
            "0a-58:0a:01:00:ff",
            "0a:58:0a:01:00-ff",
            "0a58.0a01.00ff.1122",
            "0a58.0a01:00ff",
            "0a58-0a01-00ff",
            "+a:58:0a:01:00:ff",
            "0a:58:0a:01:00:+f",
            "0a:58:0a:01:00:ff ",
            "0a:58:0a:01:00:\u{e9}",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(BadMac(bad.into())), "{bad}");
        }
    }

    #[test]
    fn serde_writes_the_text_and_empty_for_none() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Cache {
            mac: MacAddr,
            #[serde(with = "or_empty")]
            other: Option<MacAddr>,
        }
        let cache: Cache =
            serde_json::from_str(r#"{"mac":"02:00:00:00:00:0A","other":""}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&cache).unwrap(),
            r#"{"mac":"02:00:00:00:00:0a","other":""}"#
        );
        assert!(serde_json::from_str::<Cache>(r#"{"mac":"x","other":""}"#).is_err());
    }

    #[test]
    fn the_link_local_address_is_the_kernels_eui64() {
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        assert_eq!(
            mac.ipv6_link_local(),
            "fe80::5054:ff:fe12:3456"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
        );
    }
}
