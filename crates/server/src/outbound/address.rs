//! Which IP addresses an outbound request may reach (HOOK-3). `classify` names the special range
//! an address falls in; `None` means public unicast. IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is judged
//! as the IPv4 address it is, and so is the IPv4 inside the NAT64 prefix `64:ff9b::/96`; every
//! other IPv6 address outside global unicast `2000::/3` is refused, which covers IPv4-compatible
//! (`::a.b.c.d`) and IPv4-translated (`::ffff:0:a.b.c.d`) forms, and 6to4, Teredo and local-use
//! NAT64 are refused whatever they embed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The special-purpose range an address belongs to (IANA's special-purpose registries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// `0.0.0.0`, `::`: on many systems a connection to it reaches the host itself.
    Unspecified,
    /// `0.0.0.0/8` ("this network").
    ThisNetwork,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598).
    SharedAddressSpace,
    /// `169.254.0.0/16` (cloud metadata lives at 169.254.169.254), `fe80::/10`.
    LinkLocal,
    /// `fec0::/10`, deprecated but still routed inside some networks.
    SiteLocal,
    /// `fc00::/7` (cloud metadata lives at `fd00:ec2::254` on AWS).
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15` (RFC 2544).
    Benchmarking,
    /// `192.0.0.0/24` and `2001::/23` (IETF protocol assignments, Teredo included).
    ProtocolAssignment,
    /// 6to4 (`2002::/16`, relay `192.88.99.0/24`) and local-use NAT64 (`64:ff9b:1::/48`): they
    /// tunnel to an embedded address this check cannot see through reliably.
    Transition,
    /// `240.0.0.0/4` and IPv6 outside `2000::/3` that no rule above names.
    Reserved,
}

impl AddressClass {
    /// Stable snake_case name for logs and error details.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::ThisNetwork => "this_network",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::SharedAddressSpace => "shared_address_space",
            Self::LinkLocal => "link_local",
            Self::SiteLocal => "site_local",
            Self::UniqueLocal => "unique_local",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::ProtocolAssignment => "protocol_assignment",
            Self::Transition => "transition",
            Self::Reserved => "reserved",
        }
    }

    /// Whether the configured allowlist may let this class through. Unspecified, multicast and
    /// broadcast addresses are never a single peer, so no allowlist makes them a target.
    #[must_use]
    pub fn allowlistable(self) -> bool {
        !matches!(self, Self::Unspecified | Self::Multicast | Self::Broadcast)
    }
}

/// The address as it is reached: an IPv4-mapped IPv6 address is its IPv4 address.
#[must_use]
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The special range `ip` falls in, or `None` for public unicast.
#[must_use]
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match canonical(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() => Unspecified,
        _ if ip.is_broadcast() => Broadcast,
        (0, ..) => ThisNetwork,
        (10, ..) | (192, 168, _) => Private,
        (172, b, _) if b & 0xf0 == 16 => Private,
        (100, b, _) if b & 0xc0 == 64 => SharedAddressSpace,
        (127, ..) => Loopback,
        (169, 254, _) => LinkLocal,
        (192, 0, 0) => ProtocolAssignment,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (192, 88, 99) => Transition,
        (198, 18 | 19, _) => Benchmarking,
        (224..=239, ..) => Multicast,
        (240..=255, ..) => Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    let s = ip.segments();
    Some(match s {
        _ if ip.is_unspecified() => Unspecified,
        _ if ip.is_loopback() => Loopback,
        // NAT64 well-known prefix (RFC 6052): the gateway connects to the embedded IPv4.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
            return classify_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)))
        }
        [0x64, 0xff9b, 1, ..] => Transition,
        [0x2001, 0x0db8, ..] => Documentation,
        [0x2001, b, ..] if b < 0x0200 => ProtocolAssignment,
        [0x2002, ..] => Transition,
        [0x3fff, b, ..] if b < 0x1000 => Documentation,
        [a, ..] if a & 0xfe00 == 0xfc00 => UniqueLocal,
        [a, ..] if a & 0xffc0 == 0xfe80 => LinkLocal,
        [a, ..] if a & 0xffc0 == 0xfec0 => SiteLocal,
        [a, ..] if a & 0xff00 == 0xff00 => Multicast,
        // Segment-routing SIDs (RFC 9602) sit inside 2000::/3 but are not globally reachable.
        [0x5f00, ..] => Reserved,
        [a, ..] if a & 0xe000 == 0x2000 => return None,
        _ => Reserved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddressClass::*;

    #[test]
    fn special_ranges_are_named_and_public_unicast_is_not() {
        let cases: &[(&str, Option<AddressClass>)] = &[
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(ThisNetwork)),
            ("10.0.0.1", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.1", None),
            ("172.15.255.255", None),
            ("192.168.0.1", Some(Private)),
            ("100.64.0.1", Some(SharedAddressSpace)),
            ("100.127.255.255", Some(SharedAddressSpace)),
            ("100.128.0.1", None),
            ("100.63.255.255", None),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("169.254.169.254", Some(LinkLocal)),
            ("192.0.0.9", Some(ProtocolAssignment)),
            ("192.0.2.1", Some(Documentation)),
            ("198.51.100.1", Some(Documentation)),
            ("203.0.113.1", Some(Documentation)),
            ("192.88.99.1", Some(Transition)),
            ("198.18.0.1", Some(Benchmarking)),
            ("198.19.255.255", Some(Benchmarking)),
            ("198.20.0.1", None),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            ("1.1.1.1", None),
            ("8.8.8.8", None),
            ("93.184.215.14", None),
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(Reserved)),
            ("::ffff:0:a9fe:a9fe", Some(Reserved)),
            ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
            ("64:ff9b::7f00:1", Some(Loopback)),
            ("64:ff9b::808:808", None),
            ("64:ff9b:1::a9fe:a9fe", Some(Transition)),
            ("2002:a9fe:a9fe::", Some(Transition)),
            ("2002:808:808::1", Some(Transition)),
            ("2001::1", Some(ProtocolAssignment)),
            ("2001:1ff::1", Some(ProtocolAssignment)),
            ("2001:db8::1", Some(Documentation)),
            ("3fff::1", Some(Documentation)),
            ("fc00::1", Some(UniqueLocal)),
            ("fd00:ec2::254", Some(UniqueLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fec0::1", Some(SiteLocal)),
            ("ff02::1", Some(Multicast)),
            ("100::1", Some(Reserved)),
            ("5f00::1", Some(Reserved)),
            ("4000::1", Some(Reserved)),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001::200e", None),
        ];
        for (text, want) in cases {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(classify(ip), *want, "{text}");
        }
    }

    #[test]
    fn mapped_addresses_are_reached_as_ipv4() {
        let ip: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(canonical(ip), "10.1.2.3".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2606:4700::1".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    #[test]
    fn only_single_peers_can_be_allowlisted() {
        assert!(Loopback.allowlistable());
        assert!(Private.allowlistable());
        assert!(!Unspecified.allowlistable());
        assert!(!Multicast.allowlistable());
        assert!(!Broadcast.allowlistable());
    }
}
