//! Which addresses a plugin's request may connect to.
//!
//! A host name says nothing about where it leads: `evil.example` can
//! resolve to 127.0.0.1, 10.0.0.5 or the cloud's metadata service. So the
//! check is made on the addresses a name resolves to, right before
//! connecting to exactly those addresses (no second lookup an attacker's DNS
//! could answer differently). Internal addresses (loopback, private,
//! link-local, ...) are reached only at an endpoint the operator configured
//! (see `sandbox::NetworkGate::reach`); the metadata services of cloud
//! platforms, which hand out the machine's credentials, only by a plugin
//! entitled to the platform's credential chain.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What one request may reach besides public addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reach {
    /// Loopback, private, link-local and similar addresses.
    pub internal: bool,
    /// Cloud metadata services (169.254.169.254, fd00:ec2::254, ...).
    pub metadata: bool,
    /// Whether a non-loopback address may be reached at all: false for a
    /// plain-http request of an instance that holds credentials (they would
    /// cross the network in clear text) unless the operator allows it.
    pub beyond_loopback: bool,
}

impl Reach {
    /// Public addresses only (and loopback, which never leaves the machine).
    pub const PUBLIC: Reach = Reach {
        internal: false,
        metadata: false,
        beyond_loopback: true,
    };
}

/// Cloud metadata services: AWS, GCP, Azure and most others answer at
/// 169.254.169.254; AWS also at fd00:ec2::254; Alibaba at 100.100.100.200.
pub fn is_metadata(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            v4 == Ipv4Addr::new(169, 254, 169, 254) || v4 == Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    }
}

/// Names of metadata services, refused before any lookup.
pub fn is_metadata_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "metadata.google.internal" || host == "metadata"
}

/// Addresses that are not the public internet: loopback, private (RFC 1918,
/// unique-local), link-local, shared (CGNAT), unspecified, broadcast,
/// multicast.
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `reach` lets a request connect to `ip`.
pub fn may_connect(ip: IpAddr, reach: Reach) -> bool {
    if !canonical(ip).is_loopback() && !reach.beyond_loopback {
        return false;
    }
    if is_metadata(ip) {
        return reach.metadata;
    }
    !is_internal(ip) || reach.internal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_need_the_operators_endpoint() {
        let public = Reach::PUBLIC;
        let configured = Reach {
            internal: true,
            ..Reach::PUBLIC
        };
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!may_connect(ip(internal), public), "{internal}");
            assert!(may_connect(ip(internal), configured), "{internal}");
        }
        for open in ["52.95.110.1", "2600:1f18::1", "172.32.0.1", "100.128.0.1"] {
            assert!(may_connect(ip(open), public), "{open}");
        }
    }

    #[test]
    fn metadata_services_need_the_credential_chain_even_when_configured() {
        let configured = Reach {
            internal: true,
            ..Reach::PUBLIC
        };
        for metadata in ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"] {
            assert!(!may_connect(ip(metadata), configured), "{metadata}");
            assert!(may_connect(
                ip(metadata),
                Reach {
                    metadata: true,
                    ..Reach::PUBLIC
                }
            ));
        }
        assert!(is_metadata_name("metadata.google.internal."));
    }

    #[test]
    fn credentials_over_plain_http_stay_on_this_machine() {
        let cleartext = Reach {
            internal: true,
            beyond_loopback: false,
            ..Reach::PUBLIC
        };
        assert!(may_connect(ip("127.0.0.1"), cleartext));
        assert!(may_connect(ip("::1"), cleartext));
        for remote in ["52.95.110.1", "10.0.0.5", "::ffff:10.0.0.5"] {
            assert!(!may_connect(ip(remote), cleartext), "{remote}");
        }
        assert!(!is_metadata_name("storage.googleapis.com"));
    }
}
