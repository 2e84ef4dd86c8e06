//! An address range in CIDR notation (`10.20.0.0/16`, `fd00:1::/64`): the operator's allow-list
//! of private ranges sinks may reach (`--allow-private-cidrs`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One CIDR range. The address is stored with its host bits cleared, so `10.1.2.3/8` and
/// `10.0.0.0/8` are the same range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a CIDR range (e.g. 10.0.0.0/8 or fd00::/8): {why}")]
pub struct CidrError {
    input: String,
    why: &'static str,
}

impl Cidr {
    /// True when `ip` lies in this range. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is
    /// judged as the IPv4 address it carries, like the address policy does.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(u32::from(ip), self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(u128::from(ip), self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(prefix)))
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| CidrError {
            input: s.to_owned(),
            why,
        };
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(|| err("missing `/prefix`"))?;
        // Strict parsing on purpose: std refuses `0x7f.1`-style spellings, so the operator's
        // list means exactly what it says.
        let addr: IpAddr = addr.parse().map_err(|_| err("not an IP address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| err("prefix is not a number"))?;
        let network = match addr {
            IpAddr::V4(v4) if prefix <= 32 => IpAddr::V4(mask_v4(u32::from(v4), prefix).into()),
            IpAddr::V6(v6) if prefix <= 128 => IpAddr::V6(mask_v6(u128::from(v6), prefix).into()),
            _ => return Err(err("prefix too long for the address family")),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("fd00:1:2::5/32").to_string(), "fd00:1::/32");
        assert_eq!(cidr("127.0.0.1/32").to_string(), "127.0.0.1/32");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "::/129",
            "0x7f.1/8",
            "10.0.0.0/x",
            "/8",
            "host/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn containment() {
        let lo = cidr("127.0.0.0/8");
        assert!(lo.contains(ip("127.0.0.1")));
        assert!(lo.contains(ip("127.255.1.2")));
        assert!(lo.contains(ip("::ffff:127.0.0.1")), "mapped form judged as IPv4");
        assert!(!lo.contains(ip("128.0.0.1")));
        assert!(!lo.contains(ip("::1")), "families do not mix");
        let ula = cidr("fd00:1::/32");
        assert!(ula.contains(ip("fd00:1:ffff::1")));
        assert!(!ula.contains(ip("fd00:2::1")));
        let one = cidr("10.0.0.7/32");
        assert!(one.contains(ip("10.0.0.7")) && !one.contains(ip("10.0.0.8")));
        assert!(cidr("0.0.0.0/0").contains(ip("169.254.169.254")));
    }
}
