//! Address blocks for source conditions: `10.0.0.0/8`, `2001:db8::/32`, or a single address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address block; IPv4 is kept in its IPv4-mapped IPv6 form so one comparison serves both families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: u128,
    mask: u128,
}

impl Cidr {
    /// Parses `addr` or `addr/len`. Host bits beyond the prefix are refused, as they usually mean a typo.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| format!("{addr:?} is not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u32 = match len {
            None => max,
            Some(len) => len
                .parse()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{len:?} is not a prefix length for {addr} (0-{max})"))?,
        };
        let bits = u128::from(to_v6(ip));
        let mapped_len = len + (128 - max);
        let mask = if mapped_len == 0 { 0 } else { u128::MAX << (128 - mapped_len) };
        if bits & !mask != 0 {
            return Err(format!("{text:?} has host bits set beyond /{len}"));
        }
        Ok(Cidr { network: bits, mask })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        bits(ip) & self.mask == self.network
    }

    /// The block's first address, as [`bits`] gives addresses.
    pub fn network(&self) -> u128 {
        self.network
    }

    /// The block's mask over [`bits`]: an address is in the block when `bits(ip) & mask == network`.
    pub fn mask(&self) -> u128 {
        self.mask
    }

    /// The prefix length in the address's own family (an IPv4 block's is at most 32).
    pub fn prefix_len(&self) -> u32 {
        let mapped = self.mask.count_ones();
        if self.network >> 32 == 0xffff {
            mapped.saturating_sub(96)
        } else {
            mapped
        }
    }
}

/// An address as one number: IPv4 in its IPv4-mapped IPv6 form.
pub fn bits(ip: IpAddr) -> u128 {
    u128::from(to_v6(ip))
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The address in `1.2.3.4:5678`, `[::1]:80`, `::1` or `1.2.3.4`; an IPv4-mapped IPv6 address counts as IPv4.
pub fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    // Envoy's own form first (`1.2.3.4:5678`, what a source address always is): one parse instead of three.
    // No IPv6 address ends in `:` and a port after a dotted quad, so the answer is what the chain below gives.
    if let Some(v4) = text.rsplit_once(':').and_then(|(head, _)| head.parse::<Ipv4Addr>().ok()) {
        return Some(IpAddr::V4(v4));
    }
    let ip = if let Ok(ip) = text.parse::<IpAddr>() {
        ip
    } else if let Some(rest) = text.strip_prefix('[') {
        rest.split_once(']')?.0.parse().ok()?
    } else {
        text.rsplit_once(':')?.0.parse().ok()?
    };
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        parse_address(s).unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses_in_both_families() {
        let ten = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(ten.contains(ip("10.1.2.3")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(ten.contains(ip("::ffff:10.0.0.1")));
        let doc = Cidr::parse("2001:db8::/32").unwrap();
        assert!(doc.contains(ip("[2001:db8::1]:443")));
        assert!(!doc.contains(ip("2001:db9::1")));
        assert!(!doc.contains(ip("10.0.0.1")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        assert!(!all.contains(ip("::2")), "0.0.0.0/0 is every IPv4 address, not every address");
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::2")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1:5555")));
    }

    #[test]
    fn malformed_blocks_say_why() {
        assert_eq!(Cidr::parse("10.0.0.1/8").unwrap_err(), r#""10.0.0.1/8" has host bits set beyond /8"#);
        assert_eq!(Cidr::parse("10.0.0.0/33").unwrap_err(), r#""33" is not a prefix length for 10.0.0.0 (0-32)"#);
        assert_eq!(Cidr::parse("ten").unwrap_err(), r#""ten" is not an IP address"#);
    }

    #[test]
    fn addresses_parse_with_or_without_ports() {
        assert_eq!(parse_address("127.0.0.1:80"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(parse_address("[::1]:80"), Some("::1".parse().unwrap()));
        assert_eq!(parse_address(" 203.0.113.9 "), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(parse_address("unknown"), None);
        // A dotted quad may end an IPv6 address, never come before a port in one.
        assert_eq!(parse_address("::ffff:1.2.3.4"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_address("64:ff9b::1.2.3.4"), Some("64:ff9b::102:304".parse().unwrap()));
        assert_eq!(parse_address("1.2.3.4:x"), Some("1.2.3.4".parse().unwrap()));
    }
}
