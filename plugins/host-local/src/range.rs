//! Address ranges and range sets, with the defaults and messages of the Go plugin.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use libcni::spec::config::IpRange;

/// An address as a number, so that "next" and comparisons are plain arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr {
    pub v4: bool,
    pub value: u128,
}

impl Addr {
    pub fn from_ip(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(v4) => Addr {
                v4: true,
                value: u32::from(v4) as u128,
            },
            // An IPv4-mapped IPv6 address is the IPv4 address, as Go canonicalizes it.
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Addr {
                    v4: true,
                    value: u32::from(v4) as u128,
                },
                None => Addr {
                    v4: false,
                    value: u128::from(v6),
                },
            },
        }
    }

    pub fn ip(self) -> IpAddr {
        if self.v4 {
            IpAddr::V4(Ipv4Addr::from(self.value as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.value))
        }
    }

    fn next(self) -> Addr {
        Addr {
            v4: self.v4,
            value: self.value.wrapping_add(1),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}

/// One range: a subnet and the inclusive [start, end] handed out from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub start: Addr,
    pub end: Addr,
    pub gateway: Addr,
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

fn parse_ip(text: &str, what: &str) -> Result<Addr, String> {
    text.parse::<IpAddr>()
        .map(Addr::from_ip)
        .map_err(|_| format!("invalid {what} {text:?}"))
}

impl Range {
    /// Validates and fills in the defaults: gateway = network+1, start = network+1
    /// (the iterator skips the gateway), end = last address, less the broadcast
    /// address for IPv4.
    pub fn from_config(config: &IpRange) -> Result<Range, String> {
        let subnet: IpNet = config
            .subnet
            .parse()
            .map_err(|_| format!("invalid CIDR address: {}", config.subnet))?;
        let subnet = match subnet {
            // An IPv4-mapped subnet is the IPv4 subnet.
            IpNet::V6(v6) if v6.addr().to_ipv4_mapped().is_some() && v6.prefix_len() >= 96 => {
                IpNet::new(
                    IpAddr::V4(v6.addr().to_ipv4_mapped().unwrap()),
                    v6.prefix_len() - 96,
                )
                .expect("prefix fits")
            }
            other => other,
        };
        if subnet.prefix_len() > subnet.max_prefix_len() - 2 {
            return Err(format!("Network {subnet} too small to allocate from"));
        }
        if subnet.addr() != subnet.network() {
            return Err(format!(
                "Network has host bits set. For a subnet mask of length {} the network address is {}",
                subnet.prefix_len(),
                subnet.network()
            ));
        }
        let network = Addr::from_ip(subnet.network());
        let last = Addr::from_ip(subnet.broadcast());
        let in_subnet = |a: Addr| a.v4 == network.v4 && a >= network && a <= last;
        let gateway = match &config.gateway {
            Some(text) if !text.is_empty() => parse_ip(text, "gateway")?,
            _ => network.next(),
        };
        let start = match &config.range_start {
            Some(text) if !text.is_empty() => {
                let start = parse_ip(text, "rangeStart")?;
                if !in_subnet(start) {
                    return Err(format!("RangeStart {start} not in network {subnet}"));
                }
                start
            }
            _ => network.next(),
        };
        let end = match &config.range_end {
            Some(text) if !text.is_empty() => {
                let end = parse_ip(text, "rangeEnd")?;
                if !in_subnet(end) || end < start {
                    return Err(format!("RangeEnd {end} not in network {subnet}"));
                }
                end
            }
            _ if network.v4 => Addr {
                v4: true,
                value: last.value - 1,
            },
            _ => last,
        };
        Ok(Range {
            subnet,
            start,
            end,
            gateway,
        })
    }

    pub fn contains(&self, a: Addr) -> bool {
        a.v4 == self.start.v4 && a >= self.start && a <= self.end
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.start.v4 == other.start.v4
            && (self.contains(other.start)
                || self.contains(other.end)
                || other.contains(self.start)
                || other.contains(self.end))
    }

    /// The address with this range's prefix, as the result prints it.
    pub fn with_prefix(&self, a: Addr) -> IpNet {
        IpNet::new(a.ip(), self.subnet.prefix_len()).expect("prefix of our own subnet")
    }
}

/// The ranges of one set: each set gives one address per ADD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

impl RangeSet {
    pub fn from_config(configs: &[IpRange]) -> Result<RangeSet, String> {
        if configs.is_empty() {
            return Err("empty range set".into());
        }
        let ranges = configs
            .iter()
            .map(Range::from_config)
            .collect::<Result<Vec<_>, _>>()?;
        if ranges.iter().any(|r| r.start.v4 != ranges[0].start.v4) {
            return Err("mixed address families".into());
        }
        for (i, a) in ranges.iter().enumerate() {
            for b in &ranges[i + 1..] {
                if a.overlaps(b) {
                    return Err(format!("subnets {a} and {b} overlap"));
                }
            }
        }
        Ok(RangeSet(ranges))
    }

    pub fn is_v4(&self) -> bool {
        self.0[0].start.v4
    }

    pub fn range_for(&self, a: Addr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(a))
    }

    pub fn contains(&self, a: Addr) -> bool {
        self.range_for(a).is_some()
    }

    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }

    /// The candidates in round-robin order: from the address after `last_reserved`
    /// (or from the first range's start) across every range, wrapping once, never
    /// a gateway. The order is the Go plugin's, so both plugins agree on a node.
    pub fn candidates(&self, last_reserved: Option<Addr>) -> Candidates<'_> {
        let start = last_reserved.and_then(|last| {
            self.0
                .iter()
                .position(|r| r.contains(last))
                .map(|index| (index, last))
        });
        Candidates {
            set: self,
            range_index: start.map(|s| s.0).unwrap_or(0),
            current: start.map(|s| s.1),
            first: None,
            done: false,
        }
    }
}

pub struct Candidates<'a> {
    set: &'a RangeSet,
    range_index: usize,
    current: Option<Addr>,
    first: Option<Addr>,
    done: bool,
}

impl Iterator for Candidates<'_> {
    type Item = Addr;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let range = &self.set.0[self.range_index];
            let next = match self.current {
                None => range.start,
                Some(current) if current == range.end => {
                    self.range_index = (self.range_index + 1) % self.set.0.len();
                    self.set.0[self.range_index].start
                }
                Some(current) => current.next(),
            };
            self.current = Some(next);
            match self.first {
                None => self.first = Some(next),
                Some(first) if first == next => {
                    self.done = true;
                    return None;
                }
                Some(_) => {}
            }
            if next != self.set.0[self.range_index].gateway {
                return Some(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(subnet: &str) -> IpRange {
        IpRange {
            subnet: subnet.into(),
            ..Default::default()
        }
    }

    fn set(subnets: &[&str]) -> RangeSet {
        RangeSet::from_config(&subnets.iter().map(|s| range(s)).collect::<Vec<_>>()).unwrap()
    }

    fn addr(text: &str) -> Addr {
        Addr::from_ip(text.parse().unwrap())
    }

    #[test]
    fn defaults_follow_the_go_plugin() {
        let r = Range::from_config(&range("10.1.2.0/24")).unwrap();
        assert_eq!(
            (
                r.start.to_string(),
                r.end.to_string(),
                r.gateway.to_string()
            ),
            ("10.1.2.1".into(), "10.1.2.254".into(), "10.1.2.1".into())
        );
        let r6 = Range::from_config(&range("fd00:1::/120")).unwrap();
        assert_eq!(r6.end.to_string(), "fd00:1::ff");
    }

    #[test]
    fn validation_messages() {
        assert_eq!(
            Range::from_config(&range("10.0.0.0/31")).unwrap_err(),
            "Network 10.0.0.0/31 too small to allocate from"
        );
        assert_eq!(
            Range::from_config(&range("fd00::/127")).unwrap_err(),
            "Network fd00::/127 too small to allocate from"
        );
        assert_eq!(
            Range::from_config(&range("10.0.0.5/24")).unwrap_err(),
            "Network has host bits set. For a subnet mask of length 24 the network address is 10.0.0.0"
        );
        let mut r = range("10.0.0.0/24");
        r.range_start = Some("10.0.1.5".into());
        assert_eq!(
            Range::from_config(&r).unwrap_err(),
            "RangeStart 10.0.1.5 not in network 10.0.0.0/24"
        );
        let mut r = range("10.0.0.0/24");
        r.range_end = Some("10.0.1.5".into());
        assert_eq!(
            Range::from_config(&r).unwrap_err(),
            "RangeEnd 10.0.1.5 not in network 10.0.0.0/24"
        );
        assert_eq!(
            RangeSet::from_config(&[range("10.0.0.0/24"), range("fd00::/64")]).unwrap_err(),
            "mixed address families"
        );
        assert_eq!(
            RangeSet::from_config(&[range("10.0.0.0/16"), range("10.0.5.0/24")]).unwrap_err(),
            "subnets 10.0.0.1-10.0.255.254 and 10.0.5.1-10.0.5.254 overlap"
        );
    }

    #[test]
    fn first_address_skips_the_gateway_and_broadcast_is_never_offered() {
        let s = set(&["10.0.0.0/30"]);
        let all: Vec<String> = s.candidates(None).map(|a| a.to_string()).collect();
        assert_eq!(all, vec!["10.0.0.2"]);
    }

    #[test]
    fn round_robin_starts_after_the_last_reserved_and_wraps_across_ranges() {
        let s = set(&["10.0.0.0/29", "10.0.1.0/29"]);
        let order: Vec<String> = s
            .candidates(Some(addr("10.0.0.5")))
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            order,
            vec![
                "10.0.0.6", "10.0.1.2", "10.0.1.3", "10.0.1.4", "10.0.1.5", "10.0.1.6", "10.0.0.2",
                "10.0.0.3", "10.0.0.4", "10.0.0.5"
            ]
        );
        // A last-reserved address outside the set restarts from the beginning.
        let order: Vec<String> = s
            .candidates(Some(addr("192.168.0.1")))
            .map(|a| a.to_string())
            .take(2)
            .collect();
        assert_eq!(order, vec!["10.0.0.2", "10.0.0.3"]);
    }

    #[test]
    fn explicit_gateway_inside_the_range_is_skipped() {
        let mut r = range("10.0.0.0/29");
        r.gateway = Some("10.0.0.3".into());
        let s = RangeSet::from_config(&[r]).unwrap();
        let all: Vec<String> = s.candidates(None).map(|a| a.to_string()).collect();
        assert_eq!(
            all,
            vec!["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
    }
}
