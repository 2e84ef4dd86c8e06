//! The address policy: which IP addresses a sink may not reach unless the operator allows
//! private networks. Everything that is not plainly a public unicast address is refused:
//! loopback, private, link-local and cloud metadata, CGNAT, multicast, broadcast, unspecified,
//! documentation, benchmarking and reserved ranges, IPv6 unique-local / link-local / site-local,
//! and every IPv6 form that carries an IPv4 address (mapped, compatible, SIIT, NAT64, 6to4,
//! Teredo), judged by that IPv4 address where a translator would take the connection there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True when a sink may not connect to `ip` (unless private networks are allowed).
pub fn is_forbidden(ip: IpAddr) -> bool {
    forbidden_reason(ip).is_some()
}

/// Why `ip` is forbidden (`"loopback"`, `"private"`, …), or `None` for a public address.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    let reason = match (a, b, c) {
        _ if ip.is_unspecified() => "unspecified",
        (0, _, _) => "this-network (0.0.0.0/8)",
        (127, _, _) => "loopback",
        (10, _, _) | (192, 168, _) => "private",
        (172, 16..=31, _) => "private",
        (100, 64..=127, _) => "carrier-grade NAT (100.64.0.0/10)",
        (169, 254, 169) if d == 254 => "cloud metadata",
        (169, 254, _) => "link-local",
        // IETF protocol assignments (192.0.0.0/24): DS-Lite, NAT64 discovery (192.0.0.170/171),
        // and Oracle/Alibaba-style metadata live near here; nothing public.
        (192, 0, 0) => "IETF protocol assignment (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation (TEST-NET)",
        // The deprecated 6to4 relay anycast: a relay we do not choose.
        (192, 88, 99) => "6to4 relay anycast (192.88.99.0/24)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast",
        _ if ip.is_broadcast() => "broadcast",
        (240..=255, _, _) => "reserved (240.0.0.0/4)",
        _ => return None,
    };
    Some(reason)
}

fn v4_from(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    // Forms that carry an IPv4 address: the connection ends up at that IPv4 address (the kernel
    // for mapped ones, a translator for NAT64/SIIT, a relay for 6to4), so the IPv4 policy
    // decides. Otherwise `::ffff:127.0.0.1` would be a way around it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_reason(v4);
    }
    let low_v4 = v4_from(s[6], s[7]);
    match s {
        // IPv4-compatible `::a.b.c.d` (deprecated by RFC 4291, never a real destination): refused
        // whole rather than judged by the IPv4 part, as nothing legitimate resolves to it.
        [0, 0, 0, 0, 0, 0, _, _] => return Some("IPv4-compatible (deprecated)"),
        // SIIT IPv4-translated `::ffff:0:a.b.c.d` (RFC 2765).
        [0, 0, 0, 0, 0xffff, 0, _, _] => return v4_reason(low_v4),
        // Well-known NAT64 prefix 64:ff9b::/96 (RFC 6052).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => return v4_reason(low_v4),
        // Local-use NAT64 64:ff9b:1::/48 (RFC 8215): translates into the operator's own network.
        [0x64, 0xff9b, 1, ..] => return Some("local-use NAT64 (64:ff9b:1::/48)"),
        // Discard-only 100::/64 (RFC 6666).
        [0x100, 0, 0, 0, ..] => return Some("discard-only (100::/64)"),
        // 6to4 2002:AABB:CCDD::/48 embeds the IPv4 address in bits 16..48.
        [0x2002, hi, lo, ..] => {
            return v4_reason(v4_from(hi, lo)).map(|_| "6to4 form of a forbidden IPv4 address");
        }
        // Teredo 2001::/32 tunnels through a server and an obfuscated client IPv4 address we
        // cannot vouch for; nothing a SIEM publishes lives there.
        [0x2001, 0, ..] => return Some("Teredo (2001::/32)"),
        // Benchmarking 2001:2::/48 (RFC 5180).
        [0x2001, 2, 0, ..] => return Some("benchmarking (2001:2::/48)"),
        // ORCHID / ORCHIDv2 2001:10::/28 and 2001:20::/28: identifiers, not locators.
        [0x2001, 0x10..=0x2f, ..] => return Some("ORCHID (2001:10::/28, 2001:20::/28)"),
        // Documentation 2001:db8::/32 (RFC 3849) and 3fff::/20 (RFC 9637).
        [0x2001, 0xdb8, ..] | [0x3fff, 0..=0x0fff, ..] => return Some("documentation"),
        _ => {}
    }
    let reason = match s[0] {
        0xfc00..=0xfdff => "unique local (private, fc00::/7)",
        0xfe80..=0xfebf => "link-local",
        // Deprecated site-local fec0::/10: private by definition, still honoured by some stacks.
        0xfec0..=0xfeff => "site-local (deprecated)",
        0xff00..=0xffff => "multicast",
        // Only 2000::/3 is allocated as global unicast; everything else is reserved by IANA.
        0x0000..=0x1fff | 0x4000..=0xfbff => "reserved (outside 2000::/3)",
        _ => return None,
    };
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(s: &str) -> bool {
        is_forbidden(s.parse().unwrap())
    }

    #[test]
    fn forbidden_ipv4_ranges() {
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "192.168.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.0.1",
            "169.254.169.254",
            "192.0.0.170",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.42",
            "192.88.99.1",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.254",
            "255.255.255.255",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
    }

    #[test]
    fn public_ipv4_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.255.255",
            "198.17.255.255",
            "198.20.0.1",
            "192.167.1.1",
            "192.0.1.1",
            "192.0.3.1",
            "198.51.101.1",
            "203.0.114.1",
            "11.0.0.1",
            "126.255.255.255",
            "128.0.0.1",
            "223.255.255.255",
        ] {
            assert!(!forbidden(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn forbidden_ipv6_ranges() {
        for ip in [
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff05::2",
            "2001:db8::1",
            "3fff::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:20::1",
            "100::1",
            "1000::1",
            "4000::1",
            // IPv4-mapped, IPv4-compatible, SIIT, NAT64 and 6to4 forms of forbidden IPv4.
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:192.0.2.1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:0:127.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::192.168.1.1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
    }

    #[test]
    fn public_ipv6_allowed() {
        for ip in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "::ffff:0:8.8.8.8",
            "64:ff9b::1.1.1.1",
            "2002:808:808::1",
            "2001:db9::1",
            "3fff:1000::1",
        ] {
            assert!(!forbidden(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn reasons_name_the_range() {
        let reason = |s: &str| forbidden_reason(s.parse().unwrap()).unwrap();
        assert_eq!(reason("169.254.169.254"), "cloud metadata");
        assert_eq!(reason("127.0.0.1"), "loopback");
        assert_eq!(reason("::ffff:127.0.0.1"), "loopback");
        assert_eq!(reason("10.1.2.3"), "private");
        assert_eq!(reason("fe80::1"), "link-local");
        assert_eq!(reason("203.0.113.9"), "documentation (TEST-NET)");
        assert_eq!(reason("2001:db8::9"), "documentation");
        assert_eq!(reason("2002:c0a8:101::1"), "6to4 form of a forbidden IPv4 address");
    }
}
